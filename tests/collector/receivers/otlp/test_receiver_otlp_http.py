"""OTLP/HTTP edge cases against a real receiver: OTLP JSON (shaped like the spec's examples), malformed,
truncated, gzip-bombed and oversized bodies, content types, partial success and refusals."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any

import cramjam
import httpx
import pytest
import zstandard
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from processors.pdata import from_json, to_json
from processors.pipeline import Signal
from tests.collector.conftest import MakeConfig, RunCollector

# Written after the OTLP spec's examples/*.json: upper-case hex ids, enum ints, 64-bit ints as numbers or
# strings, lowerCamelCase keys, and an unknown field the receiver must ignore.
TRACE_JSON = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "billing"}}]},
            "scopeSpans": [
                {
                    "scope": {"name": "billing.lib", "version": "2.0.0"},
                    "spans": [
                        {
                            "traceId": "0AF7651916CD43DD8448EB211C80319C",
                            "spanId": "B7AD6B7169203331",
                            "parentSpanId": "00F067AA0BA902B7",
                            "name": "charge card",
                            "startTimeUnixNano": "1700000000000000000",
                            "endTimeUnixNano": 1700000000250000000,
                            "kind": 3,
                            "attributes": [
                                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1200"}},
                                {"key": "retry", "value": {"boolValue": True}},
                            ],
                            "status": {"code": 2, "message": "card declined"},
                            "futureField": {"ignored": True},
                        }
                    ],
                }
            ],
        }
    ]
}
METRICS_JSON = {
    "resourceMetrics": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "billing"}}]},
            "scopeMetrics": [
                {
                    "scope": {"name": "billing.lib"},
                    "metrics": [
                        {
                            "name": "charges",
                            "unit": "{charge}",
                            "sum": {
                                "aggregationTemporality": 2,
                                "isMonotonic": True,
                                "dataPoints": [{"asInt": "7", "timeUnixNano": 1700000000000000000}],
                            },
                        },
                        {
                            "name": "latency",
                            "unit": "s",
                            "histogram": {
                                "aggregationTemporality": 1,
                                "dataPoints": [
                                    {
                                        "count": "3",
                                        "sum": 1.5,
                                        "bucketCounts": [1, "2"],
                                        "explicitBounds": [0.5],
                                        "exemplars": [
                                            {
                                                "asDouble": 0.7,
                                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                                "spanId": "b7ad6b7169203331",
                                            }
                                        ],
                                    }
                                ],
                            },
                        },
                    ],
                }
            ],
        }
    ]
}
LOGS_JSON = {
    "resourceLogs": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "billing"}}]},
            "scopeLogs": [
                {
                    "logRecords": [
                        {
                            "timeUnixNano": "1700000000000000000",
                            "severityNumber": 9,
                            "severityText": "INFO",
                            "traceId": "0AF7651916CD43DD8448EB211C80319C",
                            "spanId": "B7AD6B7169203331",
                            "body": {"stringValue": "charged"},
                            "attributes": [
                                {
                                    "key": "items",
                                    "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 2}]}},
                                },
                                {
                                    "key": "card",
                                    "value": {
                                        "kvlistValue": {"values": [{"key": "brand", "value": {"stringValue": "visa"}}]}
                                    },
                                },
                            ],
                        }
                    ]
                }
            ],
        }
    ]
}

JSON_HEADERS = {"Content-Type": "application/json"}
PROTO_HEADERS = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def collector(run_collector: RunCollector, make_config: MakeConfig) -> Any:
    receiver = {
        "protocols": {
            "http": {"endpoint": "127.0.0.1:0", "max_request_body_size": 64 * 1024},
        }
    }
    return run_collector(make_config(receiver=receiver))


def _trace_request(n_spans: int = 2) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(n_spans):
        span = ss.spans.add()
        span.name = f"op-{i}"
        span.trace_id = bytes(range(16))
        span.span_id = bytes([i + 1] * 8)
    return req


def _status(response: httpx.Response) -> status_pb2.Status:
    status = status_pb2.Status()
    if response.headers["content-type"].startswith("application/x-protobuf"):
        status.ParseFromString(response.content)
    else:
        body = response.json()
        status.code, status.message = body.get("code", 0), body.get("message", "")
    return status


def test_spec_shaped_json_decodes_for_all_signals(collector: Any) -> None:
    with httpx.Client(base_url=collector.http_url) as client:
        for path, body in (
            ("/v1/traces", TRACE_JSON),
            ("/v1/metrics", METRICS_JSON),
            ("/v1/logs", LOGS_JSON),
        ):
            response = client.post(path, content=json.dumps(body), headers=JSON_HEADERS)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/json"
            assert response.json() == {}

    (traces,) = collector.exporter(signal=Signal.TRACES).wait_items(1)
    span = traces.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert span.span_id.hex() == "b7ad6b7169203331"
    assert span.parent_span_id.hex() == "00f067aa0ba902b7"
    assert span.start_time_unix_nano == 1_700_000_000_000_000_000
    assert span.end_time_unix_nano == 1_700_000_000_250_000_000
    assert span.kind == 3 and span.status.code == 2 and span.status.message == "card declined"
    assert span.attributes[0].value.int_value == 1200 and span.attributes[1].value.bool_value is True

    (metrics,) = collector.exporter(signal=Signal.METRICS).wait_items(2)
    charges, latency = metrics.resource_metrics[0].scope_metrics[0].metrics
    assert charges.sum.data_points[0].as_int == 7 and charges.sum.is_monotonic
    point = latency.histogram.data_points[0]
    assert list(point.bucket_counts) == [1, 2] and point.count == 3 and list(point.explicit_bounds) == [0.5]
    assert point.exemplars[0].trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"

    (logs,) = collector.exporter(signal=Signal.LOGS).wait_items(1)
    record = logs.resource_logs[0].scope_logs[0].log_records[0]
    assert record.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c" and record.severity_number == 9
    items = record.attributes[0].value.array_value.values
    assert (items[0].string_value, items[1].int_value) == ("a", 2)
    assert record.attributes[1].value.kvlist_value.values[0].value.string_value == "visa"


def test_json_round_trip_keeps_hex_ids() -> None:
    message = from_json(json.dumps(TRACE_JSON), ExportTraceServiceRequest())
    again = json.loads(to_json(message))
    span = again["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == "0af7651916cd43dd8448eb211c80319c" and span["spanId"] == "b7ad6b7169203331"


def test_protobuf_gzip_and_response_encoding(collector: Any) -> None:
    body = gzip.compress(_trace_request(3).SerializeToString())
    with httpx.Client(base_url=collector.http_url) as client:
        response = client.post("/v1/traces", content=body, headers={**PROTO_HEADERS, "Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    parsed = ExportTraceServiceResponse()
    parsed.ParseFromString(response.content)
    assert not parsed.HasField("partial_success")
    assert [s.name for s in collector.exporter().wait_items(3)[0].resource_spans[0].scope_spans[0].spans] == [
        "op-0",
        "op-1",
        "op-2",
    ]


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
        ("snappy", lambda b: bytes(cramjam.snappy.compress_raw(b))),
    ],
)
def test_zstd_and_snappy_bodies_as_upstream_exporters_send_them(
    collector: Any, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    body = compress(_trace_request(2).SerializeToString())
    with httpx.Client(base_url=collector.http_url) as client:
        response = client.post("/v1/traces", content=body, headers={**PROTO_HEADERS, "Content-Encoding": encoding})
    assert response.status_code == 200, response.text
    assert collector.exporter().wait_items(1)[0] == _trace_request(2)


@pytest.mark.parametrize(
    ("encoding", "body", "code", "needle"),
    [
        ("zstd", b"\x28\xb5\x2f\xfd garbage", 400, "zstd"),
        ("snappy", b"\x10\xff\xff garbage", 400, "snappy"),
        # Small on the wire (under the 64 KiB limit), far larger decompressed: cut off at the limit.
        ("zstd", zstandard.ZstdCompressor().compress(b"\x00" * (10 << 20)), 413, "decompressed"),
        ("snappy", bytes(cramjam.snappy.compress_raw(b"\x00" * (1 << 20))), 413, "decompressed"),
    ],
    ids=["bad-zstd", "bad-snappy", "zstd-bomb", "snappy-bomb"],
)
def test_bad_zstd_and_snappy_bodies_are_refused(
    collector: Any, encoding: str, body: bytes, code: int, needle: str
) -> None:
    with httpx.Client(base_url=collector.http_url) as client:
        response = client.post("/v1/traces", content=body, headers={**PROTO_HEADERS, "Content-Encoding": encoding})
    assert response.status_code == code, response.text
    assert needle in _status(response).message
    assert collector.exporter().items() == 0


@pytest.mark.parametrize(
    ("headers", "body", "code", "needle"),
    [
        (PROTO_HEADERS, b"\xff\xff\xff\xff garbage", 400, "malformed protobuf"),
        (PROTO_HEADERS, _trace_request(2).SerializeToString()[:-5], 400, "malformed protobuf"),
        (JSON_HEADERS, b'{"resourceSpans": [', 400, "invalid JSON"),
        (
            JSON_HEADERS,
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            400,
            "hex id",
        ),
        (JSON_HEADERS, b'{"resourceSpans": 5}', 400, "OTLP/JSON"),
        # 10,000 levels: deeper than the parser's recursion limit (was a 500 from RecursionError)
        (JSON_HEADERS, b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 400, "nested too deeply"),
        (JSON_HEADERS, b"[" * 10_000 + b"]" * 10_000, 400, "nested too deeply"),
        ({**PROTO_HEADERS, "Content-Encoding": "gzip"}, gzip.compress(b"x" * 1000)[:-10], 400, "gzip"),
        ({**PROTO_HEADERS, "Content-Encoding": "br"}, b"abc", 400, "Content-Encoding"),
        ({"Content-Type": "text/plain"}, b"hello", 415, "Content-Type"),
        (PROTO_HEADERS, b"\x00" * (64 * 1024 + 1), 413, "max_request_body_size"),
        # A 10 MiB gzip bomb (10 KiB on the wire) is cut off at the 64 KiB decompressed limit.
        (
            {**PROTO_HEADERS, "Content-Encoding": "gzip"},
            gzip.compress(b"\x00" * (10 << 20)),
            413,
            "decompressed",
        ),
    ],
    ids=[
        "garbage",
        "truncated",
        "bad-json",
        "bad-hex",
        "wrong-shape",
        "deep-object",
        "deep-array",
        "truncated-gzip",
        "brotli",
        "text",
        "oversized",
        "gzip-bomb",
    ],
)
def test_bad_bodies_get_the_right_code_and_the_receiver_keeps_serving(
    collector: Any, headers: dict[str, str], body: bytes, code: int, needle: str
) -> None:
    with httpx.Client(base_url=collector.http_url) as client:
        response = client.post("/v1/traces", content=body, headers=headers)
        assert response.status_code == code, response.text
        assert needle in _status(response).message
        # still serving, and nothing reached the pipeline from the bad request
        ok = client.post("/v1/traces", content=_trace_request(1).SerializeToString(), headers=PROTO_HEADERS)
        assert ok.status_code == 200
    assert collector.exporter().wait_items(1)[0] == _trace_request(1)
    assert collector.exporter().items() == 1


def test_invalid_ids_are_partial_success(collector: Any) -> None:
    request = _trace_request(3)
    request.resource_spans[0].scope_spans[0].spans[1].trace_id = b"\x01" * 5
    with httpx.Client(base_url=collector.http_url) as client:
        response = client.post("/v1/traces", content=request.SerializeToString(), headers=PROTO_HEADERS)
    assert response.status_code == 200
    parsed = ExportTraceServiceResponse()
    parsed.ParseFromString(response.content)
    assert parsed.partial_success.rejected_spans == 1
    assert "trace_id must be 16 bytes" in parsed.partial_success.error_message
    delivered = collector.exporter().wait_items(2)
    assert [s.name for s in delivered[0].resource_spans[0].scope_spans[0].spans] == ["op-0", "op-2"]


def test_wrong_method_and_path(collector: Any) -> None:
    with httpx.Client(base_url=collector.http_url) as client:
        assert client.get("/v1/traces").status_code == 405
        assert client.post("/v2/traces", content=b"", headers=PROTO_HEADERS).status_code == 404


@pytest.mark.parametrize(
    ("mode", "code", "grpc_code"),
    [("refuse", 503, 14), ("data", 400, 3)],
)
def test_downstream_errors_map_to_otlp_codes(
    run_collector: RunCollector, make_config: MakeConfig, mode: str, code: int, grpc_code: int
) -> None:
    collector = run_collector(make_config(exporters={"collect": {"mode": mode, "retry_after": 2.5}}))
    with httpx.Client(base_url=collector.http_url) as client:
        response = client.post("/v1/traces", content=json.dumps(TRACE_JSON), headers=JSON_HEADERS)
    assert response.status_code == code
    assert _status(response).code == grpc_code
    if code == 503:
        assert response.headers["retry-after"] == "3"  # whole seconds, rounded up


def test_downstream_partial_rejection_is_reported(run_collector: RunCollector, make_config: MakeConfig) -> None:
    collector = run_collector(make_config(exporters={"collect": {"mode": "partial"}}))
    with httpx.Client(base_url=collector.http_url) as client:
        response = client.post("/v1/traces", content=_trace_request(3).SerializeToString(), headers=PROTO_HEADERS)
    assert response.status_code == 200
    parsed = ExportTraceServiceResponse()
    parsed.ParseFromString(response.content)
    assert parsed.partial_success.rejected_spans == 1
    assert "rejected by the test exporter" in parsed.partial_success.error_message
