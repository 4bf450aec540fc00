"""Secrets never reach disk: the shipped ``otel-collector.yaml`` (its processors and pipelines unchanged; only
ports, directories and the DSN are pointed at this test) receives the corpus in ``secrets_corpus.yaml`` in every
attribute-bearing field of traces, logs and metrics over real OTLP/gRPC; then nothing of it is in the on-disk
queue, in any PostgreSQL table, or in the collector's log, while harmless canaries sent alongside are."""

from __future__ import annotations

import itertools
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
import yaml
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors._attributes import set_attribute

ROOT = Path(__file__).resolve().parents[4]
CORPUS = yaml.safe_load(Path(__file__).with_name("secrets_corpus.yaml").read_text())
_RUNNER = ROOT / "tests" / "support" / "collector_proc.py"


class Corpus:
    """Writes the corpus into OTLP fields, each ``{secret}`` a fresh value remembered with its place."""

    def __init__(self) -> None:
        self.planted: dict[str, str] = {lit["secret"]: f"literal {lit['secret'][:12]}…" for lit in CORPUS["literals"]}
        self.canaries: list[str] = []
        self._n = itertools.count()

    def secret(self, place: str) -> str:
        value = f"Zq{next(self._n):04d}{secrets.token_hex(8)}"  # alphanumeric: every pattern's value class
        self.planted[value] = place
        return value

    def canary(self, place: str) -> str:
        value = f"canary-{place.replace(' ', '-')}"
        self.canaries.append(value)
        return value

    def texts(self, place: str) -> list[str]:
        made = [t.replace("{secret}", self.secret(f"{place}: {t!r}")) for t in CORPUS["texts"]]
        return made + [lit["text"] for lit in CORPUS["literals"]]

    def keyed(self, place: str) -> dict[str, object]:
        return {key: self.secret(f"{place}: key {key}") for key in CORPUS["keys"]}

    def fill(self, attributes: Any, place: str) -> None:
        values: dict[str, object] = {"canary": self.canary(place), **self.keyed(place)}
        for i, text in enumerate(self.texts(place)):
            values[f"note.{i}"] = text
        values["lines"] = self.texts(f"{place} array")
        values["config"] = {
            **self.keyed(f"{place} nested map"),
            "inner": {"lines": self.texts(f"{place} nested array"), **self.keyed(f"{place} nested twice")},
        }
        values["sessions"] = [self.keyed(f"{place} array of maps")]
        for key, value in values.items():
            set_attribute(attributes, key, value)


def _traces(corpus: Corpus, now: int) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    corpus.fill(rs.resource.attributes, "span resource")
    set_attribute(rs.resource.attributes, "service.name", "secrets-test")
    ss = rs.scope_spans.add()
    corpus.fill(ss.scope.attributes, "span scope")
    messages = corpus.texts("status message")
    for i, message in enumerate(messages):
        span = ss.spans.add(name=f"op{i}", start_time_unix_nano=now, end_time_unix_nano=now + 1000)
        span.trace_id = os.urandom(16)
        span.span_id = os.urandom(8)
        span.status.code = 2
        span.status.message = message
        if i == 0:
            corpus.fill(span.attributes, "span")
            corpus.fill(span.events.add(name="exception", time_unix_nano=now).attributes, "event")
            link = span.links.add(trace_id=os.urandom(16), span_id=os.urandom(8))
            corpus.fill(link.attributes, "link")
    return request


def _logs(corpus: Corpus, now: int) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    corpus.fill(rl.resource.attributes, "log resource")
    set_attribute(rl.resource.attributes, "service.name", "secrets-test")
    sl = rl.scope_logs.add()
    corpus.fill(sl.scope.attributes, "log scope")
    record = sl.log_records.add(time_unix_nano=now, severity_number=9)
    record.body.string_value = corpus.canary("log body")
    corpus.fill(record.attributes, "log record")
    for body in corpus.texts("log body"):
        sl.log_records.add(time_unix_nano=now, severity_number=17).body.string_value = body
    corpus.fill(sl.log_records.add(time_unix_nano=now).body.kvlist_value.values, "log map body")
    array_body = sl.log_records.add(time_unix_nano=now).body.array_value.values
    for text in corpus.texts("log array body"):
        array_body.add(string_value=text)
    return request


def _metrics(corpus: Corpus, now: int) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    corpus.fill(rm.resource.attributes, "metric resource")
    set_attribute(rm.resource.attributes, "service.name", "secrets-test")
    sm = rm.scope_metrics.add()
    gauge = sm.metrics.add(name="secrets.gauge").gauge.data_points.add(time_unix_nano=now, as_double=1.0)
    corpus.fill(gauge.attributes, "gauge point")
    histogram = sm.metrics.add(name="secrets.duration", unit="s").histogram
    histogram.aggregation_temporality = 2
    point = histogram.data_points.add(time_unix_nano=now, count=1, sum=0.5)
    point.bucket_counts.extend([0, 1])
    point.explicit_bounds.append(0.1)
    corpus.fill(point.attributes, "histogram point")
    exemplar = point.exemplars.add(time_unix_nano=now, as_double=0.5)
    corpus.fill(exemplar.filtered_attributes, "exemplar")
    return request


def _config(tmp: Path, dsn: str) -> Path:
    """The shipped config with its listeners on free loopback ports and its storage in ``tmp``."""
    config = yaml.safe_load((ROOT / "otel-collector.yaml").read_text())
    pipelines = json.dumps(config["service"]["pipelines"])
    processors = json.dumps(config["processors"])
    config["extensions"]["health_check"]["endpoint"] = "127.0.0.1:0"
    config["extensions"]["file_storage"]["directory"] = str(tmp / "queues")
    del config["extensions"]["analytics"]  # the API over the sink: nothing it stores
    config["service"]["extensions"].remove("analytics")
    config["receivers"]["otlp"]["protocols"] = {"grpc": {"endpoint": "127.0.0.1:0"}}
    config["exporters"]["prometheus"]["endpoint"] = "127.0.0.1:0"
    postgres = config["exporters"]["postgres"]
    del postgres["data_dir"]
    postgres["dsn"] = dsn
    postgres["retention_check_interval"] = 0
    config["service"]["telemetry"]["metrics"] = {"level": "none"}
    assert json.dumps(config["service"]["pipelines"]) == pipelines  # the shipped pipelines, untouched
    assert json.dumps(config["processors"]) == processors
    path = tmp / "otel-collector.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def collector(pg_dsn: str, sink_tmp_path: Path) -> Iterator[tuple[int, Path]]:
    config = _config(sink_tmp_path, pg_dsn)
    log = sink_tmp_path / "collector.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(_RUNNER), str(config)], stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT
        )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        if not line:
            proc.wait(10)
            pytest.fail(f"collector did not start:\n{log.read_text()[-3000:]}")
        yield int(json.loads(line)["grpc_port"]), log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _scalar(conn: psycopg.Connection, query: str) -> Any:
    """The one value a one-row, one-column query returns."""
    row = conn.execute(query).fetchone()
    assert row is not None, query
    return row[0]


def _wait_stored(dsn: str, expected: dict[str, int], log: Path) -> None:
    deadline = time.monotonic() + 60
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            counts = {t: _scalar(conn, f"SELECT count(*) FROM {t}") for t in expected}
            if all(counts[t] >= n for t, n in expected.items()):
                return
            assert time.monotonic() < deadline, f"stored {counts}, expected {expected}\n{log.read_text()[-3000:]}"
            time.sleep(0.1)


def _database_text(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            )
        ]
        return "\n".join(
            str(_scalar(conn, f"SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM \"{table}\" t"))
            for table in tables
        )


def _leaks(haystack: str, corpus: Corpus) -> list[str]:
    return [f"{place} ({secret})" for secret, place in corpus.planted.items() if secret in haystack]


def test_no_secret_of_the_corpus_reaches_the_queue_the_database_or_the_log(
    collector: tuple[int, Path], pg_dsn: str, sink_tmp_path: Path
) -> None:
    port, log = collector
    corpus = Corpus()
    now = time.time_ns()
    traces, logs, metrics = _traces(corpus, now), _logs(corpus, now), _metrics(corpus, now)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(traces, timeout=30)
        logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs, timeout=30)
        metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(metrics, timeout=30)
    spans = len(traces.resource_spans[0].scope_spans[0].spans)
    records = len(logs.resource_logs[0].scope_logs[0].log_records)
    _wait_stored(pg_dsn, {"spans": spans, "logs": records, "metric_points": 2}, log)

    stored = _database_text(pg_dsn)
    queued = b"".join(p.read_bytes() for p in (sink_tmp_path / "queues").rglob("*") if p.is_file())
    queued_text = queued.decode("utf-8", "replace")
    # The canaries travelled the same way: the places searched do hold what was sent.
    for canary in ("canary-span", "canary-log-record", "canary-gauge-point", "canary-span-resource"):
        assert canary in stored, canary
        assert canary in queued_text, canary
    assert len(corpus.planted) > 1000
    assert _leaks(queued_text, corpus) == []
    assert _leaks(stored, corpus) == []
    assert _leaks(log.read_text(), corpus) == []


def test_the_corpus_is_secret_without_redaction() -> None:
    """Every planted secret is really in the requests as sent (a typo in the corpus would hide nothing)."""
    corpus = Corpus()
    now = time.time_ns()
    sent = "".join(
        str(request) + request.SerializeToString().decode("utf-8", "replace")
        for request in (_traces(corpus, now), _logs(corpus, now), _metrics(corpus, now))
    )
    assert [place for secret, place in corpus.planted.items() if secret not in sent] == []
