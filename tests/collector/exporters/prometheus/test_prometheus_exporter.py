"""The prometheus exporter fed real OTLP from the OTel SDK: exposition, promtool, delta→cumulative, expiry."""

from __future__ import annotations

import asyncio

import httpx
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from collector.component import ComponentID, CreateSettings, Signal
from collector.exporters.exporterhelper.testing import StaticHost
from collector.exporters.prometheus import PrometheusExporterConfig, factories
from collector.exporters.prometheus.config import ResourceToTelemetryConversion
from collector.exporters.prometheus.exporter import PrometheusExporter
from tests.support.prom_helpers import collect, needs_promtool, promtool_check

RESOURCE = Resource.create(
    {"service.name": "shop", "service.namespace": "acme", "service.instance.id": "i-1", "host.name": "h1"}
)
DELTA = {
    Counter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
    UpDownCounter: AggregationTemporality.DELTA,
}


class FakeClock:
    """Injected monotonic clock so expiry is tested without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_exporter(clock: FakeClock | None = None, **config: object) -> PrometheusExporter:
    cfg = PrometheusExporterConfig(endpoint="127.0.0.1:0", **config)  # type: ignore[arg-type]
    settings = CreateSettings(ComponentID("prometheus"), Signal.METRICS)
    return PrometheusExporter(settings, cfg, clock=clock or FakeClock())


def sdk(delta: bool = False, exponential: bool = False) -> tuple[InMemoryMetricReader, MeterProvider]:
    reader = InMemoryMetricReader(preferred_temporality=DELTA if delta else None)  # type: ignore[arg-type]
    views = (
        [View(instrument_name="*latency*", aggregation=ExponentialBucketHistogramAggregation())] if exponential else []
    )
    return reader, MeterProvider(metric_readers=[reader], resource=RESOURCE, views=views)


def feed(exporter: PrometheusExporter, request: ExportMetricsServiceRequest) -> None:
    asyncio.run(exporter.consume(Signal.METRICS, request))


def sample(text: str, prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.split(" ")[1])
    raise AssertionError(f"no sample starting with {prefix!r} in:\n{text}")


def test_factory_registers_prometheus_type_for_metrics_only() -> None:
    (factory,) = factories
    assert factory.type == "prometheus"
    assert factory.signals == frozenset({Signal.METRICS})
    assert PrometheusExporterConfig().validate() == []
    assert PrometheusExporterConfig(endpoint="nope").validate()[0].startswith("endpoint:")


def test_sdk_metrics_translate_per_spec() -> None:
    reader, mp = sdk()
    meter = mp.get_meter("my.lib", "1.2")
    meter.create_counter("http.server.requests", unit="{request}", description="Requests.").add(3, {"route": "/a"})
    meter.create_histogram("http.server.duration", unit="s").record(0.2, {"route": "/a"})
    meter.create_up_down_counter("queue.size", unit="By").add(-4)
    meter.create_gauge("cpu.utilization", unit="1").set(0.25)
    exporter = make_exporter()
    feed(exporter, collect(reader))
    text = exporter.render()
    ident = 'instance="i-1",job="acme/shop",otel_scope_name="my.lib",otel_scope_version="1.2"'
    assert "# TYPE http_server_requests_total counter" in text
    assert f'http_server_requests_total{{{ident},route="/a"}} 3' in text
    assert f'http_server_duration_seconds_bucket{{{ident},route="/a",le="0.0"}} 0' in text
    assert f'http_server_duration_seconds_bucket{{{ident},route="/a",le="+Inf"}} 1' in text
    assert f'http_server_duration_seconds_count{{{ident},route="/a"}} 1' in text
    assert "# TYPE queue_size_bytes gauge" in text  # non-monotonic sum → gauge, no _total
    assert f"queue_size_bytes{{{ident}}} -4" in text
    assert f"cpu_utilization_ratio{{{ident}}} 0.25" in text
    # target_info carries the non-identifying resource attributes, keyed by job/instance.
    info = next(line for line in text.splitlines() if line.startswith("target_info{"))
    assert 'host_name="h1"' in info and 'job="acme/shop"' in info and "service_name" not in info


def test_resource_to_telemetry_and_const_labels_and_namespace() -> None:
    reader, mp = sdk()
    mp.get_meter("m").create_counter("jobs").add(1)
    exporter = make_exporter(
        namespace="otel",
        const_labels={"env": "prod"},
        resource_to_telemetry_conversion=ResourceToTelemetryConversion(enabled=True),
    )
    feed(exporter, collect(reader))
    line = next(x for x in exporter.render().splitlines() if x.startswith("otel_jobs_total{"))
    assert 'env="prod"' in line and 'host_name="h1"' in line and line.endswith(" 1")


@needs_promtool
def test_promtool_finds_nothing_in_served_exposition() -> None:
    reader, mp = sdk(exponential=True)
    meter = mp.get_meter("my.lib", "1.2")
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("op"):
        meter.create_counter("http.server.requests", description="Requests.").add(5, {"weird key": 'a"b\\c\nd'})
        meter.create_histogram("http.server.duration", unit="s", description="Latency.").record(0.3)
        meter.create_histogram("rpc.latency", unit="s", description="RPC latency.").record(0.004)
        meter.create_up_down_counter("queue.size", unit="By", description="Queue.").add(7)

    async def scrape() -> tuple[str, str, str]:
        exporter = make_exporter(enable_open_metrics=True)
        await exporter.start(StaticHost())
        try:
            await exporter.consume(Signal.METRICS, collect(reader))
            url = f"http://127.0.0.1:{exporter.port}/metrics"
            async with httpx.AsyncClient() as client:
                text = await client.get(url)
                om = await client.get(url, headers={"Accept": "application/openmetrics-text;version=1.0.0"})
                missing = await client.get(f"http://127.0.0.1:{exporter.port}/nope")
            assert missing.status_code == 404
            assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert om.headers["content-type"].startswith("application/openmetrics-text")
            return text.text, om.text, str(om.headers["content-type"])
        finally:
            await exporter.shutdown()

    text, om, _ = asyncio.run(scrape())
    assert promtool_check(text) == ""
    assert "rpc_latency_seconds_bucket" in text  # exponential histogram converted to classic buckets
    # OpenMetrics: counters typed without _total, exemplars with trace/span ids, terminated by # EOF.
    assert "# TYPE http_server_requests counter" in om
    assert "# TYPE target info" in om
    assert om.endswith("# EOF\n")
    exemplar_lines = [line for line in om.splitlines() if ' # {trace_id="' in line]
    assert exemplar_lines
    for line in exemplar_lines:
        ids = line.split(" # {")[1].split("}")[0]
        trace_id = ids.split('trace_id="')[1][:32]
        span_id = ids.split('span_id="')[1][:16]
        assert int(trace_id, 16) != 0 and int(span_id, 16) != 0


def test_openmetrics_is_off_unless_enabled() -> None:
    exporter = make_exporter()
    content_type, body = exporter._scrape("application/openmetrics-text;version=1.0.0")
    assert content_type.startswith("text/plain") and b"# EOF" not in body


def test_delta_sums_and_histograms_accumulate_to_cumulative() -> None:
    reader, mp = sdk(delta=True)
    meter = mp.get_meter("m")
    counter = meter.create_counter("jobs")
    hist = meter.create_histogram("work.duration", unit="s")
    exporter = make_exporter()
    counter.add(2)
    hist.record(1.0)
    feed(exporter, collect(reader))
    counter.add(5)
    hist.record(7.0)
    hist.record(20.0)
    request = collect(reader)
    assert request.resource_metrics[0].scope_metrics[0].metrics[0].sum.aggregation_temporality == 1  # delta
    feed(exporter, request)
    text = exporter.render()
    assert sample(text, "jobs_total{") == 7
    assert sample(text, "work_duration_seconds_count{") == 3
    assert sample(text, "work_duration_seconds_sum{") == 28.0
    buckets = [line for line in text.splitlines() if line.startswith("work_duration_seconds_bucket")]
    assert any('le="5.0"} 1' in b for b in buckets) and any('le="10.0"} 2' in b for b in buckets)


def test_cumulative_points_replace_and_late_points_are_ignored() -> None:
    reader, mp = sdk()
    counter = mp.get_meter("m").create_counter("jobs")
    exporter = make_exporter()
    counter.add(2)
    first = collect(reader)
    counter.add(3)
    second = collect(reader)
    feed(exporter, second)
    feed(exporter, first)  # older point of the same stream arriving late
    assert sample(exporter.render(), "jobs_total{") == 5


def test_series_expire_after_metric_expiration() -> None:
    clock = FakeClock()
    reader, mp = sdk()
    meter = mp.get_meter("m")
    meter.create_counter("old").add(1)
    exporter = make_exporter(clock, metric_expiration=60.0)
    feed(exporter, collect(reader))
    clock.now += 50
    meter.create_counter("fresh").add(1)
    request = collect(reader)
    # keep only "fresh" in the second request so "old" is not refreshed
    for sm in request.resource_metrics[0].scope_metrics:
        kept = [m for m in sm.metrics if m.name == "fresh"]
        del sm.metrics[:]
        sm.metrics.extend(kept)
    feed(exporter, request)
    clock.now += 20  # old: 70 s without update; fresh: 20 s
    text = exporter.render()
    assert "old_total" not in text and "fresh_total" in text
    clock.now += 100
    assert "fresh_total" not in exporter.render()


def test_conflicting_types_keep_the_first_and_drop_the_other() -> None:
    reader, mp = sdk()
    meter = mp.get_meter("m")
    meter.create_counter("dup", unit="s").add(1)
    exporter = make_exporter()
    feed(exporter, collect(reader))
    reader2, mp2 = sdk()
    mp2.get_meter("m").create_gauge("dup_seconds_total").set(9)
    feed(exporter, collect(reader2))
    text = exporter.render()
    assert text.count("# TYPE dup_seconds_total") == 1
    assert "# TYPE dup_seconds_total counter" in text
    assert sample(text, "dup_seconds_total{") == 1


def test_delta_exponential_histograms_merge_across_scales() -> None:
    reader, mp = sdk(delta=True, exponential=True)
    hist = mp.get_meter("m").create_histogram("io.latency", unit="s")
    exporter = make_exporter()
    hist.record(1.5)
    feed(exporter, collect(reader))  # one value: finest scale
    for v in (0.001, 1000.0, 3.0):
        hist.record(v)  # wide range: coarser scale
    feed(exporter, collect(reader))
    text = exporter.render()
    assert sample(text, "io_latency_seconds_count{") == 4
    bounds = [
        (float(line.split('le="')[1].split('"')[0]), float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("io_latency_seconds_bucket")
    ]
    les = [b for b, _ in bounds]
    assert les == sorted(les) and les[-1] == float("inf")
    counts = [c for _, c in bounds]
    assert counts == sorted(counts) and counts[-1] == 4
    # only populated buckets are emitted: below 3.0 the cumulative count holds 0.001 and 1.5, then 3.0 joins
    assert max(c for b, c in bounds if b < 2.9) == 2
    assert next(c for b, c in bounds if b >= 3.0) == 3


def test_openmetrics_counter_samples_end_in_total_even_without_suffixes() -> None:
    reader, mp = sdk()
    mp.get_meter("m").create_counter("jobs.done", unit="s").add(2)
    exporter = make_exporter(add_metric_suffixes=False)
    feed(exporter, collect(reader))
    assert "\njobs_done{" in exporter.render()  # text format: exactly the sanitised name
    om = exporter.render(openmetrics=True)
    assert "# TYPE jobs_done counter" in om and "\njobs_done_total{" in om


def test_summary_and_send_timestamps() -> None:
    # The Python SDK has no summaries; they come from other sources (e.g. Prometheus receivers), so build one.
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name, metric.unit = "rpc.latency", "ms"
    dp = metric.summary.data_points.add()
    dp.time_unix_nano, dp.count, dp.sum = 1_700_000_000_123_000_000, 10, 55.5
    for q, v in ((0.5, 4.0), (0.99, 12.5)):
        qv = dp.quantile_values.add()
        qv.quantile, qv.value = q, v
    exporter = make_exporter(send_timestamps=True)
    feed(exporter, request)
    text = exporter.render()
    assert "# TYPE rpc_latency_milliseconds summary" in text
    assert 'rpc_latency_milliseconds{quantile="0.99"} 12.5 1700000000123' in text
    assert "rpc_latency_milliseconds_count 10 1700000000123" in text
    assert "rpc_latency_milliseconds_sum 55.5 1700000000123" in text
    assert 'rpc_latency_milliseconds{quantile="0.5"} 4 1700000000.123' in exporter.render(openmetrics=True)


def counters(names: range) -> ExportMetricsServiceRequest:
    reader, mp = sdk()
    meter = mp.get_meter("m")
    for i in names:
        meter.create_counter(f"c{i}").add(1)
    return collect(reader)


def test_series_are_capped_at_max_series_until_old_ones_expire() -> None:
    assert PrometheusExporterConfig().max_series == 50_000
    clock = FakeClock()
    exporter = make_exporter(clock, metric_expiration=60.0, max_series=10)
    feed(exporter, counters(range(30)))  # 30 counters + target_info (host.name): 31 series offered
    assert exporter.store.series_count() == 10
    assert exporter.store.dropped_points == 21
    text = exporter.render()
    assert text.count("_total{") == 9  # target_info came first and took one place
    feed(exporter, counters(range(5)))  # existing series still update
    assert exporter.store.series_count() == 10
    clock.now += 61
    feed(exporter, counters(range(100, 105)))  # the old ones expired: room again, without any scrape
    assert exporter.store.series_count() == 6
    assert sample(exporter.render(), "c100_total{") == 1


def test_series_expire_without_scrapes() -> None:
    clock = FakeClock()
    exporter = make_exporter(clock, metric_expiration=60.0)
    feed(exporter, counters(range(1000)))
    assert exporter.store.series_count() == 1001
    clock.now += 61
    feed(exporter, counters(range(1)))  # merging sweeps what nobody scraped
    assert exporter.store.series_count() == 2
