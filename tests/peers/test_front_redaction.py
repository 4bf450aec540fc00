"""Secrets never reach disk in front of the sinks either: ``deploy/otelcol-contrib/config.yaml`` on the real upstream
Collector masks them (its contrib ``redaction`` processor) before the persistent queue and before Tempo.

The sinks are down, so what the Collector accepted waits in its ``file_storage`` queue on disk: every byte of that
queue, and what the Tempo stand-in received, must hold the request's harmless marker and none of its secrets."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.peers.peer_procs import ROOT, free_port, telemetry, upstream_collector, wait_for
from tests.support.trace_recorder import TraceRecorder

pytestmark = pytest.mark.slow

MARKER = "front-redaction-marker-5c1e"
# key -> value: each value (or its secret part) must be masked; the corpus the sink's own redaction is tested with
# holds more, these are the shapes a front Collector sees most.
SECRET_ATTRIBUTES = {
    "db.password": "hunter2-db-pass",
    "passWord": "hunter2-camel",
    "http.request.header.authorization": "Token tok-4b1d9e77c0",
    "x-auth-token": "sess-9d8c7b6a5f4e",
    "api_key": "plainapikey-77aa",
    "note": "call with Bearer abcdefghijklmnopqrstu please",
    "openai.key": "sk-proj-aaaaBBBBccccDDDDeeeeFFFF",
    "dsn": "postgresql://app:s3cr3t-in-url@db:5432/app",
}
SECRETS = [
    "hunter2-db-pass",
    "hunter2-camel",
    "tok-4b1d9e77c0",
    "sess-9d8c7b6a5f4e",
    "plainapikey-77aa",
    "abcdefghijklmnopqrstu",
    "sk-proj-aaaaBBBBccccDDDDeeeeFFFF",
    "s3cr3t-in-url",
    "hunter2-log-body",
]


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _queue_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


def test_the_front_collector_masks_secrets_before_its_queue_and_tempo(
    otelcol: Path, workdir: Path, trace_recorder: tuple[TraceRecorder, int]
) -> None:
    tempo, tempo_port = trace_recorder  # stands in for Tempo (the config's otlp/tempo exporter)
    grpc_port = free_port()
    closed = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]  # the sinks are down
    queue = workdir / "upstream-queue"
    overrides = {
        "extensions": {
            "health_check": {"endpoint": f"127.0.0.1:{free_port()}"},
            "file_storage/queue": {"directory": str(queue)},
        },
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"},
                    "http": {"endpoint": f"127.0.0.1:{free_port()}"},
                }
            }
        },
        "exporters": {
            name: {"resolver": {"static": {"hostnames": closed}}}
            for name in ("loadbalancing/sink", "loadbalancing/sink-metrics")
        },
        "service": {"telemetry": telemetry(free_port())},
    }
    env = {
        "TEMPO_ENDPOINT": f"127.0.0.1:{tempo_port}",
        "PROMETHEUS_REMOTE_WRITE": f"http://127.0.0.1:{free_port()}/api/v1/write",
    }
    span = Span(
        trace_id=bytes(range(1, 17)),
        span_id=bytes(range(1, 9)),
        name="POST /login",
        start_time_unix_nano=1,
        end_time_unix_nano=2,
        attributes=[_kv("marker", MARKER), *(_kv(k, v) for k, v in SECRET_ATTRIBUTES.items())],
    )
    traces = trace_service_pb2.ExportTraceServiceRequest()
    traces.resource_spans.add().scope_spans.add().spans.append(span)
    logs = logs_service_pb2.ExportLogsServiceRequest()
    logs.resource_logs.add().scope_logs.add().log_records.append(
        LogRecord(
            body=AnyValue(string_value=f"{MARKER} login failed: password=hunter2-log-body"),
            attributes=[_kv("marker", MARKER)],
        )
    )
    config = ROOT / "deploy" / "otelcol-contrib" / "config.yaml"
    with upstream_collector(otelcol, workdir, config, overrides, ready_port=grpc_port, env=env) as upstream:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(traces, timeout=10)
            logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs, timeout=10)
        wait_for(lambda: tempo.requests(), f"Tempo's stand-in to receive the span\n{upstream.log_tail()}", 60)
        wait_for(
            lambda: _queue_bytes(queue).count(MARKER.encode()) >= 2,
            f"the span and the log record in the on-disk queue\n{upstream.log_tail()}",
            60,
            alive=upstream.check_alive,
        )
        on_disk = _queue_bytes(queue)
    sent_to_tempo = b"".join(request.SerializeToString() for request in tempo.requests())
    assert MARKER.encode() in sent_to_tempo
    for secret in SECRETS:
        assert secret.encode() not in on_disk, f"{secret!r} is in the upstream Collector's queue on disk"
        assert secret.encode() not in sent_to_tempo, f"{secret!r} was sent to Tempo"
