"""OTel → Prometheus name, unit and label translation (compatibility spec tables)."""

import pytest

from collector.exporters.prometheus._naming import label_text, metric_name, sanitize_label


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        ("http.server.duration", "s", "histogram", "http_server_duration_seconds"),
        ("http.server.duration", "ms", "histogram", "http_server_duration_milliseconds"),
        ("db.client.latency", "us", "histogram", "db_client_latency_microseconds"),
        ("process.memory.usage", "By", "gauge", "process_memory_usage_bytes"),
        ("heap", "MiBy", "gauge", "heap_mebibytes"),
        ("http.server.requests", "{request}", "counter", "http_server_requests_total"),
        ("requests_total", "{request}", "counter", "requests_total"),
        ("cpu.utilization", "1", "gauge", "cpu_utilization_ratio"),
        ("hits", "1", "counter", "hits_total"),
        ("throughput", "By/s", "gauge", "throughput_bytes_per_second"),
        ("speed", "m/s", "gauge", "speed_meters_per_second"),
        ("rate", "1/s", "gauge", "rate_per_second"),
        ("disk.io", "By", "counter", "disk_io_bytes_total"),
        ("queue.size", "{item}", "gauge", "queue_size"),
        ("latency_seconds", "s", "histogram", "latency_seconds"),
        ("temp", "Cel", "gauge", "temp_celsius"),
        ("odd-name/with..chars", "", "gauge", "odd_name_with_chars"),
        ("2xx.responses", "", "counter", "_2xx_responses_total"),
        ("jobs", "custom_unit", "gauge", "jobs_custom_unit"),
    ],
)
def test_metric_name_translation(name: str, unit: str, kind: str, expected: str) -> None:
    assert metric_name(name, unit, kind=kind) == expected


def test_namespace_prefix_and_suffixes_switch() -> None:
    assert metric_name("calls", "", kind="counter", namespace="traces.span") == "traces_span_calls_total"
    assert metric_name("http.server.duration", "s", kind="histogram", add_suffixes=False) == "http_server_duration"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("http.route", "http_route"),
        ("1abc", "key_1abc"),
        ("_x", "key_x"),
        ("__x", "key_x"),
        ("a-b c", "a_b_c"),
    ],
)
def test_label_names(key: str, expected: str) -> None:
    assert sanitize_label(key) == expected


def test_colliding_labels_join_values_in_key_order_and_values_are_escaped() -> None:
    text = label_text([("a.b", "1"), ("a_b", "2"), ("q", 'x"y\\z\nw'), ("empty", "")])
    assert text == 'a_b="1;2",q="x\\"y\\\\z\\nw"'
