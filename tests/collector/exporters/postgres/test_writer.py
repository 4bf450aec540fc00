"""Writer behaviour on a real PostgreSQL: idempotence, partitions and retention, rollup accuracy, hostile
data,
concurrent writers, concurrent migrations."""

from __future__ import annotations

import math
import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import psycopg
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.trace import Tracer
from opentelemetry.util.types import AttributeValue

from collector.exporters.postgres import histogram, schema, traces
from collector.exporters.postgres.config import RetentionConfig
from collector.exporters.postgres.retention import apply_retention
from collector.exporters.postgres.writer import PostgresWriter, WriterSettings
from processors.pipeline import Signal
from tests.support.sink_otlp import make_spans, traces_request


def synthetic_request(
    n: int,
    *,
    start_ns: int | None = None,
    seed: int = 1,
    services: int = 1,
    id_offset: int = 0,
) -> ExportTraceServiceRequest:
    """``n`` spans with lognormal durations; ids are deterministic in ``seed`` and ``id_offset``."""
    base = start_ns if start_ns is not None else datetime.now(UTC).replace(second=0, microsecond=0).timestamp()
    base_ns = int(base * 1e9) if start_ns is None else start_ns
    request = ExportTraceServiceRequest()
    for s in range(services):
        rs = request.resource_spans.add()
        rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=f"svc{s}")))
        ss = rs.scope_spans.add()
        ss.scope.name = "bench"
        for i in range(n):
            k = id_offset + s * n + i
            rnd = random.Random(seed * 10_000_019 + k)  # per span: the same span always has the same times
            span = ss.spans.add()
            span.trace_id = (seed * 1_000_003 + k).to_bytes(16, "big")
            span.span_id = (k + 1).to_bytes(8, "big")
            span.name = f"op{k % 3}"
            span.kind = Span.SPAN_KIND_SERVER
            span.start_time_unix_nano = base_ns + rnd.randrange(0, 50_000_000_000)
            duration_ms = rnd.lognormvariate(3.0, 1.0)
            span.end_time_unix_nano = span.start_time_unix_nano + int(duration_ms * 1e6)
            span.status.code = 2 if k % 10 == 0 else 1
            for key, value in (("tenant.id", f"t{k % 2}"), ("gen_ai.request.model", "m1")):
                span.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
            span.attributes.append(KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=10)))
            span.attributes.append(KeyValue(key="cost.usd", value=AnyValue(double_value=0.001)))
    return request


def _counts(conn: psycopg.Connection) -> tuple[int, int, int]:
    spans = conn.execute("SELECT count(*) FROM spans").fetchone()
    r1m = conn.execute("SELECT coalesce(sum(count), 0) FROM span_rollups_1m").fetchone()
    r1h = conn.execute("SELECT coalesce(sum(count), 0) FROM span_rollups_1h").fetchone()
    assert spans and r1m and r1h
    return int(spans[0]), int(r1m[0]), int(r1h[0])


def test_redelivery_inserts_nothing_twice(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    writer = PostgresWriter(pg_dsn)
    request = synthetic_request(200)
    assert writer.write(Signal.TRACES, request).inserted == 200
    tokens = pg_conn.execute("SELECT sum(input_tokens), sum(cost_usd) FROM span_rollups_1m").fetchone()
    second = writer.write(Signal.TRACES, request)
    assert second.inserted == 0 and second.items == 200
    # A batch overlapping the first (half old, half new) adds only the new half.
    overlap = synthetic_request(200, id_offset=100)
    assert writer.write(Signal.TRACES, overlap).inserted == 100
    assert _counts(pg_conn) == (300, 300, 300)
    assert tokens is not None and tokens[0] == 2000
    again = pg_conn.execute("SELECT sum(input_tokens), sum(cost_usd) FROM span_rollups_1m").fetchone()
    assert again is not None and again[0] == 3000


def test_cost_is_stored_as_the_decimal_the_client_wrote(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    costs = [0.0012, 1.5e-05, 5e-11, -0.25, 12345678.9, 9999999999.999, 0.1 + 0.2, 1.23456789015]
    request = synthetic_request(len(costs))
    spans = request.resource_spans[0].scope_spans[0].spans
    for span, cost in zip(spans, costs, strict=True):
        for kv in span.attributes:
            if kv.key == "cost.usd":
                kv.value.double_value = cost
    assert PostgresWriter(pg_dsn).write(Signal.TRACES, request).inserted == len(costs)
    stored: dict[bytes, Decimal] = dict(pg_conn.execute("SELECT span_id, cost_usd FROM spans").fetchall())
    expected = {
        span.span_id: Decimal(repr(cost)).quantize(Decimal("1e-10"), ROUND_HALF_UP)
        for span, cost in zip(spans, costs, strict=True)
    }
    assert stored == expected
    (rolled_up,) = pg_conn.execute("SELECT sum(cost_usd) FROM span_rollups_1m").fetchone() or (None,)
    assert rolled_up == sum(expected.values())


def test_numeric_columns_carry_any_count_of_cost_units(pg_dsn: str) -> None:
    # Rollup sums are unbounded numeric: beyond 1e12 USD the dumper leaves its fixed six-digit layout.
    units = [0, 1, -1, 5, 10**10, -(10**10) - 3, 10**22 - 1, -(10**22), 10**25 + 7, -(3 * 10**40) - 1]
    writer = PostgresWriter(pg_dsn)
    conn = writer._connection()
    conn.execute("CREATE TEMP TABLE cost_units_check (i int, v numeric)")
    with conn.cursor() as cur, cur.copy("COPY cost_units_check (i, v) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "numeric"])
        for i, n in enumerate(units):
            copy.write_row((i, n))
    stored = [v for _, v in conn.execute("SELECT i, v FROM cost_units_check ORDER BY i").fetchall()]
    assert stored == [Decimal(f"{n}E-10") for n in units]  # exact (scaleb would round to 28 digits)
    writer.close()


def test_metric_and_log_redelivery(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    now = datetime.now(UTC).timestamp()
    metrics = ExportMetricsServiceRequest()
    m = metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="queue.depth")
    for i in range(5):
        p = m.gauge.data_points.add(time_unix_nano=int((now + i) * 1e9), as_int=i)
        p.attributes.append(KeyValue(key="q", value=AnyValue(string_value="a")))
    logs = ExportLogsServiceRequest()
    lr = logs.resource_logs.add().scope_logs.add()
    for i in range(4):
        lr.log_records.add(time_unix_nano=int((now + i) * 1e9), body=AnyValue(string_value=f"line {i}"))
    writer = PostgresWriter(pg_dsn)
    for _ in range(2):
        writer.write(Signal.METRICS, metrics)
        writer.write(Signal.LOGS, logs)
    assert pg_conn.execute("SELECT count(*), count(DISTINCT stream_id) FROM metric_points").fetchone() == (
        5,
        1,
    )
    assert pg_conn.execute("SELECT count(*) FROM logs").fetchone() == (4,)


def test_partitions_premade_on_demand_and_dropped_by_retention(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    # Kept forever while writing (no lower bound at the door), so retention below finds old partitions to drop.
    writer = PostgresWriter(pg_dsn, WriterSettings(retention={}))
    now = datetime.now(UTC)
    old = now - timedelta(days=45)
    ancient_ns = 86_400 * 10**9 * 3  # 1970-01-04: far in the past, stored when retention is forever
    writer.write(Signal.TRACES, synthetic_request(10, start_ns=int(old.timestamp() * 1e9), seed=2))
    writer.write(Signal.TRACES, synthetic_request(10, seed=3))
    writer.write(Signal.TRACES, synthetic_request(1, start_ns=ancient_ns, seed=4))
    parts = {r[0] for r in pg_conn.execute("SELECT partition FROM otel_partitions WHERE parent = 'spans'")}
    for days_ahead in range(4):  # today + premake (3)
        assert f"spans_p{(now + timedelta(days=days_ahead)):%Y%m%d}" in parts
    assert f"spans_p{old:%Y%m%d}" in parts and "spans_p19700104" in parts
    assert pg_conn.execute("SELECT count(*) FROM spans").fetchone() == (21,)

    result = apply_retention(pg_conn, RetentionConfig(traces="30d", rollups="40d"))
    assert f"spans_p{old:%Y%m%d}" in result.dropped_partitions and "spans_p19700104" in result.dropped_partitions
    assert f"span_events_p{old:%Y%m%d}" in result.dropped_partitions
    assert pg_conn.execute("SELECT count(*) FROM spans").fetchone() == (10,)
    assert pg_conn.execute("SELECT to_regclass(%s)", (f"spans_p{old:%Y%m%d}",)).fetchone() == (None,)
    assert result.deleted_rollup_rows > 0  # the 45-day-old and 1970 rollups
    # A dropped partition is re-created when late data for it arrives again.
    writer.write(Signal.TRACES, synthetic_request(10, start_ns=int(old.timestamp() * 1e9), seed=5))
    assert pg_conn.execute("SELECT count(*) FROM spans").fetchone() == (20,)


def test_rollup_percentiles_within_one_percent_of_exact(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    writer = PostgresWriter(pg_dsn)
    for seed in range(4):
        writer.write(Signal.TRACES, synthetic_request(1500, seed=seed + 10))
    durations = np.array([r[0] for r in pg_conn.execute("SELECT duration_ms FROM spans").fetchall()])
    assert len(durations) == 6000
    for q in (0.5, 0.9, 0.95, 0.99, 0.999):
        exact = float(np.percentile(durations, q * 100))
        for table in ("span_rollups_1m", "span_rollups_1h"):
            row = pg_conn.execute(
                f"SELECT otel_hist_quantile(otel_hist_sum(latency_hist), %s), otel_hist_sum(latency_hist) FROM {table}",
                (q,),
            ).fetchone()
            assert row is not None
            assert abs(row[0] - exact) / exact < 0.01, (table, q, row[0], exact)
            assert math.isclose(histogram.quantile(row[1], q) or 0, row[0], rel_tol=1e-9)
    # Rollups built in Python (COPY fast path) and in SQL (staging path) bucket alike.
    pairs = pg_conn.execute("SELECT duration_ms, otel_hist_bucket(duration_ms) FROM spans").fetchall()
    assert all(histogram.bucket_index(d) == i for d, i in pairs)
    # The Python twin buckets exactly as SQL does.
    py_hist = histogram.build(durations.tolist())
    sql_hist = pg_conn.execute("SELECT otel_hist_sum(latency_hist) FROM span_rollups_1h").fetchone()
    assert sql_hist is not None and {int(k): v for k, v in sql_hist[0].items()} == py_hist


def test_hostile_strings_are_stored_or_repaired(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    huge = "x" * 2_000_000
    hostile: dict[str, AttributeValue] = {
        "nul": "a\x00b",
        "sql": "'); DROP TABLE spans; --",
        "emoji": "🚀 ok ü 中文",
        "huge": huge,
        "nan": float("nan"),
        "inf": float("inf"),
        "tenant.id": "ten\x00ant",
        "gen_ai.usage.input_tokens": 1e30,  # beyond bigint
        "cost.usd": float("inf"),
        "quality.score": float("nan"),
        "with\x00nul.key": "v",
    }

    def build(tracer: Tracer) -> None:
        with tracer.start_as_current_span("hostile\x00name", attributes=hostile) as span:
            span.add_event("exception", {"exception.type": "E\x00rr", "exception.message": "m"})

    spans = make_spans(build)
    result = PostgresWriter(pg_dsn).write(Signal.TRACES, traces_request(spans))
    assert (result.inserted, result.quarantined, result.repaired) == (1, 0, 1)
    row = pg_conn.execute(
        "SELECT name, tenant_id, input_tokens, cost_usd, quality_score, attributes FROM spans"
    ).fetchone()
    assert row is not None
    name, tenant, tokens, cost, quality, attrs = row
    assert (name, tenant, tokens, cost, quality) == ("hostilename", "tenant", None, None, None)
    assert attrs["nul"] == "ab" and attrs["sql"] == hostile["sql"] and attrs["emoji"] == hostile["emoji"]
    assert attrs["huge"] == huge and attrs["nan"] == "NaN" and attrs["inf"] == "Infinity"
    assert attrs["withnul.key"] == "v"
    # Values a column cannot hold stay in the attributes (nothing the client sent is lost).
    assert float(attrs["gen_ai.usage.input_tokens"]) == 1e30 and attrs["cost.usd"] == "Infinity"
    assert pg_conn.execute("SELECT exception_type FROM span_events").fetchone() == ("Err",)
    assert pg_conn.execute("SELECT count(*) FROM spans WHERE true").fetchone() == (1,)  # table still there
    reasons = pg_conn.execute("SELECT action, reason FROM quarantine").fetchall()
    assert len(reasons) == 1 and reasons[0][0] == "repaired"
    for fragment in ("NUL characters removed", "non-finite", "input_tokens", "cost.usd", "quality.score"):
        assert fragment in reasons[0][1]


def test_rows_postgres_rejects_are_quarantined_without_blocking_the_batch(
    pg_dsn: str, pg_conn: psycopg.Connection
) -> None:
    # A rule PostgreSQL enforces that the sink cannot repair (as an operator's CHECK constraint would be).
    pg_conn.execute("ALTER TABLE spans ADD CONSTRAINT no_poison CHECK (name <> 'poison')")
    request = synthetic_request(20, seed=7)
    bad = request.resource_spans[0].scope_spans[0].spans[3]
    bad.name = "poison"
    writer = PostgresWriter(pg_dsn)
    result = writer.write(Signal.TRACES, request)
    assert (result.inserted, result.quarantined) == (19, 1)
    row = pg_conn.execute("SELECT action, reason, span_id, item FROM quarantine").fetchone()
    assert row is not None and row[0] == "quarantined" and row[2] == bad.span_id and "no_poison" in row[1]
    assert Span.FromString(row[3]).span_id == bad.span_id
    assert _counts(pg_conn) == (19, 19, 19)
    # Redelivery of the same batch: nothing doubled, the quarantine row not repeated.
    again = writer.write(Signal.TRACES, request)
    assert again.inserted == 0
    assert _counts(pg_conn) == (19, 19, 19)
    assert pg_conn.execute("SELECT count(*) FROM quarantine").fetchone() == (1,)


def test_a_batch_is_written_a_chunk_of_spans_at_a_time(
    pg_dsn: str, pg_conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a chunk's rows exist at once (a 100,000-span request held 380 MiB as one): chunks cross request
    boundaries, and together store, quarantine, repair and count what the batch holds; a redelivery doubles nothing."""
    monkeypatch.setattr(traces, "MAX_SPANS_PER_WRITE", 7)
    pg_conn.execute("ALTER TABLE spans ADD CONSTRAINT no_poison CHECK (name <> 'poison')")
    first, second = synthetic_request(10, seed=9), synthetic_request(15, seed=9, id_offset=10)
    spans = [*first.resource_spans[0].scope_spans[0].spans, *second.resource_spans[0].scope_spans[0].spans]
    spans[8].name = "nul\x00name"  # repaired, in the second chunk
    spans[12].name = "poison"  # rejected by PostgreSQL: its chunk is retried span by span
    late = spans[20]  # in the last chunk, dated beyond the allowed clock skew
    late.start_time_unix_nano += 10 * 86_400 * 10**9
    late.end_time_unix_nano += 10 * 86_400 * 10**9
    writer = PostgresWriter(pg_dsn)
    chunks: list[int] = []
    write_chunk = writer._write_span_chunk

    def counted(conn: psycopg.Connection, records: list[traces.SpanRecord]) -> Any:
        chunks.append(len(records))
        return write_chunk(conn, records)

    monkeypatch.setattr(writer, "_write_span_chunk", counted)
    batch = [first, second]
    result = writer.write_batch(Signal.TRACES, batch, [r.SerializeToString() for r in batch])
    assert chunks == [7, 7, 7, 4]
    assert (result.items, result.inserted, result.quarantined, result.repaired) == (25, 23, 2, 1)
    earliest = pg_conn.execute("SELECT min(start_time) FROM spans").fetchone()
    assert earliest is not None and result.earliest_span_us == int(earliest[0].timestamp() * 1_000_000)
    assert _counts(pg_conn) == (23, 23, 23)
    again = writer.write_batch(Signal.TRACES, batch, [r.SerializeToString() for r in batch])
    assert (again.items, again.inserted) == (25, 0)
    assert _counts(pg_conn) == (23, 23, 23)
    assert pg_conn.execute("SELECT action, count(*) FROM quarantine GROUP BY 1 ORDER BY 1").fetchall() == [
        ("quarantined", 2),
        ("repaired", 1),
    ]


def test_malformed_items_are_quarantined_or_clamped(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    request = synthetic_request(5, seed=8)
    spans = request.resource_spans[0].scope_spans[0].spans
    # Nested deeper than any JSON encoder recurses (a client can build it; the wire parser caps nesting).
    value = spans[0].attributes.add(key="deep").value
    for _ in range(3000):
        value = value.kvlist_value.values.add(key="k").value
    value.string_value = "bottom"
    # uint32 counts and unknown enum values beyond the columns' range: binary COPY would wrap them silently.
    spans[1].dropped_attributes_count = 2**32 - 1
    spans[1].kind = 70000
    spans[2].flags = 2**32 - 1
    result = PostgresWriter(pg_dsn).write(Signal.TRACES, request)
    assert (result.inserted, result.quarantined, result.repaired) == (4, 1, 1)
    rows: dict[bytes, str] = dict(
        pg_conn.execute("SELECT span_id, (dropped_attributes_count, kind, flags)::text FROM spans").fetchall()
    )
    assert rows[spans[1].span_id] == f"(2147483647,32767,{spans[1].flags})"
    assert rows[spans[2].span_id] == "(0,2,-1)"  # flags keep their bits (two's complement)
    reasons: dict[str, str] = dict(pg_conn.execute("SELECT action, reason FROM quarantine").fetchall())
    assert "Recursion" in reasons["quarantined"]
    assert "beyond integer" in reasons["repaired"] and "beyond smallint" in reasons["repaired"]


def test_concurrent_writers_produce_exact_rollups(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    # Four threads, each with its own connection, write overlapping batches (every span sent twice).
    batches = [synthetic_request(300, seed=21, id_offset=k * 150, services=2) for k in range(8)]
    errors: list[BaseException] = []

    def run(part: list[ExportTraceServiceRequest]) -> None:
        writer = PostgresWriter(pg_dsn)
        try:
            for request in part:
                writer.write(Signal.TRACES, request)
        except BaseException as exc:
            errors.append(exc)
        finally:
            writer.close()

    threads = [threading.Thread(target=run, args=(batches[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    distinct = pg_conn.execute("SELECT count(*) FROM spans").fetchone()
    assert distinct is not None
    assert _counts(pg_conn) == (distinct[0],) * 3
    # Per-key rollups equal a fresh aggregation of the raw rows.
    mismatch = pg_conn.execute(
        "SELECT count(*) FROM (SELECT date_trunc('minute', start_time) b, service_name, operation,"
        " status_code,"
        " count(*) n, sum(duration_ms) d FROM spans GROUP BY 1, 2, 3, 4) raw"
        " FULL JOIN (SELECT bucket_start b, service_name, operation, status_code, sum(count) n,"
        " sum(duration_sum_ms) d FROM span_rollups_1m GROUP BY 1, 2, 3, 4) r"
        " USING (b, service_name, operation,"
        " status_code) WHERE raw.n IS DISTINCT FROM r.n OR abs(raw.d - r.d) > 1e-6"
    ).fetchone()
    assert mismatch == (0,)


def test_concurrent_migrations_apply_each_version_once(pg_schemas: Any) -> None:
    dsn = pg_schemas.create(migrate=False)
    applied: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                applied.extend(m.version for m in schema.migrate(conn))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert not errors
        versions = [m.version for m in schema.available()]
        assert sorted(applied) == versions
        with psycopg.connect(dsn) as conn:
            status = schema.status(conn)
            assert [a.version for a in status.applied] == versions and not status.pending
    finally:
        pg_schemas.drop(dsn)


def test_invalid_surrogates_cannot_reach_the_sink() -> None:
    # Why the sink has no surrogate repair: protobuf refuses to encode a lone surrogate on the client, and the
    # receiver's parser rejects invalid UTF-8 on the wire, so every string a request carries is valid UTF-8.
    import pytest
    from google.protobuf.message import DecodeError

    with pytest.raises(UnicodeEncodeError):
        AnyValue(string_value="a\ud800b")
    with pytest.raises(DecodeError):
        AnyValue.FromString(b"\x0a\x04a\xed\xa0\x80")  # "a" + an encoded surrogate
