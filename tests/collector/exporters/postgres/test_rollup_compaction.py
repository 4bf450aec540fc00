"""Rollups are appended per batch and merged by compaction (migration 0021): merging changes no total, no
percentile, and never loses or doubles a row written while it runs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.exporters.postgres.rollups import ROLLUP_TABLES, compact_rollups
from collector.exporters.postgres.writer import PostgresWriter
from processors.pipeline import Signal
from tests.collector.exporters.postgres.test_writer import synthetic_request

_KEY = "bucket_start, service_name, operation, status_code, tenant_id, agent_name, model"
_TOTALS = (
    f"SELECT {_KEY}, sum(count), sum(errors), sum(duration_sum_ms)::numeric(30, 6), min(duration_min_ms),"
    " max(duration_max_ms), sum(input_tokens), sum(output_tokens), sum(cost_usd), sum(quality_sum),"
    " sum(quality_count), otel_hist_sum(latency_hist){requests} FROM {table} GROUP BY {key} ORDER BY {key}"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def totals(conn: psycopg.Connection[Any], table: str, requests: bool = True) -> list[tuple[Any, ...]]:
    """Every total per key; ``requests=False`` on a schema older than migration 0024."""
    query = _TOTALS.format(table=table, key=_KEY, requests=", sum(requests)" if requests else "")
    return conn.execute(query).fetchall()


def rows_per_key(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT max(n) FROM (SELECT count(*) AS n FROM {table} GROUP BY {_KEY}) AS k").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def test_batches_append_partial_rows_that_compaction_merges_without_changing_any_total(
    pg_dsn: str, pg_conn: psycopg.Connection
) -> None:
    writer = PostgresWriter(pg_dsn)
    for seed in range(5):  # five batches over the same keys: five partial rows per key
        writer.write(Signal.TRACES, synthetic_request(300, seed=seed + 1, services=2))
    before = {t: totals(pg_conn, t) for t in ROLLUP_TABLES}
    assert all(rows_per_key(pg_conn, t) == 5 for t in ROLLUP_TABLES)

    result = compact_rollups(pg_conn, _EPOCH)

    assert result is not None and result.merged_keys > 0 and result.removed_rows == 5 * result.merged_keys
    for table in ROLLUP_TABLES:
        assert rows_per_key(pg_conn, table) == 1
        assert totals(pg_conn, table) == before[table]
    spans = pg_conn.execute("SELECT count(*) FROM spans").fetchone()
    one_minute = pg_conn.execute("SELECT sum(count) FROM span_rollups_1m").fetchone()
    assert spans == one_minute == (3000,)
    # A redelivered batch after compaction still counts once.
    writer.write(Signal.TRACES, synthetic_request(300, seed=1, services=2))
    assert pg_conn.execute("SELECT sum(count) FROM span_rollups_1h").fetchone() == (3000,)
    assert compact_rollups(pg_conn, _EPOCH) == type(result)(0, 0)  # nothing left to merge


def test_compaction_only_touches_rows_from_since_on(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    writer = PostgresWriter(pg_dsn)
    old = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    for seed in range(2):
        writer.write(Signal.TRACES, synthetic_request(50, seed=seed + 1, start_ns=int(old.timestamp() * 1e9)))
        writer.write(Signal.TRACES, synthetic_request(50, seed=seed + 11))
    compact_rollups(pg_conn, old + timedelta(days=1))
    counts = pg_conn.execute(
        "SELECT max(n) FILTER (WHERE b >= %(cut)s), max(n) FILTER (WHERE b < %(cut)s) FROM"
        f" (SELECT bucket_start AS b, count(*) AS n FROM span_rollups_1h GROUP BY {_KEY}) AS k",
        {"cut": old + timedelta(days=1)},
    ).fetchone()
    assert counts == (1, 2)  # recent keys one row each, older ones two


def test_rows_appended_during_compaction_are_kept_and_counted_once(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    """Writers keep appending while another connection compacts over and over: the totals are exact."""
    writers = [PostgresWriter(pg_dsn) for _ in range(2)]
    done = threading.Event()
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for batch in range(12):
                writers[i].write(Signal.TRACES, synthetic_request(100, seed=100 + i * 50 + batch, services=2))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def compact() -> None:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            while not done.is_set():
                compact_rollups(conn, _EPOCH)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    compactor = threading.Thread(target=compact)
    compactor.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    compactor.join()
    assert not errors
    compact_rollups(pg_conn, _EPOCH)
    assert pg_conn.execute("SELECT count(*) FROM spans").fetchone() == (2 * 12 * 200,)
    for table in ROLLUP_TABLES:
        assert pg_conn.execute(f"SELECT sum(count) FROM {table}").fetchone() == (2 * 12 * 200,)
        assert rows_per_key(pg_conn, table) == 1


def test_a_second_compaction_at_once_skips_its_turn(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    PostgresWriter(pg_dsn).write(Signal.TRACES, synthetic_request(20, seed=3))
    with psycopg.connect(pg_dsn) as holder, holder.transaction():
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (0x6F74656C_0021,))
        assert compact_rollups(pg_conn, _EPOCH) is None
    assert compact_rollups(pg_conn, _EPOCH) is not None


def test_upgrade_from_upserted_rollups_keeps_every_row(pg_schemas: Any, sink_tmp_path: Path) -> None:
    """A database written before migrations 0021-0022 (unique merged rollup rows, locale-collated text) upgrades in
    place: nothing is lost, and new batches append and compact alongside the old rows."""
    from collector.exporters.postgres import schema

    old = sink_tmp_path / "migrations"
    old.mkdir()
    for migration in schema.available():
        if migration.version <= 20:
            (old / f"{migration.version:04d}_{migration.name}.sql").write_text(migration.sql, encoding="utf-8")
    dsn = pg_schemas.create(migrate=False)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            schema.migrate(conn, old)
            bucket = datetime.now(UTC).replace(second=0, microsecond=0)
            for table, start in (("span_rollups_1m", bucket), ("span_rollups_1h", bucket.replace(minute=0))):
                conn.execute(
                    f"INSERT INTO {table} (bucket_start, service_name, operation, status_code, tenant_id, model,"
                    " count, errors, duration_sum_ms, duration_min_ms, duration_max_ms, input_tokens, output_tokens,"
                    " cost_usd, quality_sum, quality_count, latency_hist)"
                    " VALUES (%s, 'svc0', 'op0', 1, 't0', 'm1', 7, 0, 70, 5, 20, 0, 0, 0, 0, 0, '{\"150\": 7}')",
                    (start,),
                )
            before = {t: totals(conn, t, requests=False) for t in ROLLUP_TABLES}
            applied = [m.version for m in schema.migrate(conn)]
            assert applied == [m.version for m in schema.available() if m.version > 20]
            assert {t: totals(conn, t, requests=False) for t in ROLLUP_TABLES} == before
            writer = PostgresWriter(dsn)
            # keys (svc0, op0, 1, t0, m1) among them, in the same minute as the old rows
            writer.write(Signal.TRACES, synthetic_request(60, seed=7, start_ns=int(bucket.timestamp() * 1e9)))
            writer.close()
            compact_rollups(conn, _EPOCH)
            spans = conn.execute("SELECT count(*) FROM spans").fetchone()
            assert spans == (60,)
            for table in ROLLUP_TABLES:
                assert conn.execute(f"SELECT sum(count) FROM {table}").fetchone() == (60 + 7,)
                assert rows_per_key(conn, table) == 1
                # The pre-upgrade rows count no requests (0024's default); the new batch's roots and SERVER spans do.
                requests = conn.execute(f"SELECT sum(requests)::bigint FROM {table}").fetchone()
                assert (
                    requests
                    == conn.execute("SELECT count(*) FROM spans WHERE parent_span_id IS NULL OR kind = 2").fetchone()
                )
            merged = conn.execute(
                "SELECT count(*) FROM span_rollups_1h WHERE operation = 'op0' AND status_code = 1 AND tenant_id = 't0'"
                " AND latency_hist ? '150'"
            ).fetchone()
            assert merged == (1,)  # the pre-upgrade row was merged with the new batch's partial row for its key
    finally:
        pg_schemas.drop(dsn)


def _mixed_kinds(first_id: int, count: int, start: int) -> ExportTraceServiceRequest:
    """Traces of four spans: an INTERNAL root, a SERVER child, a CLIENT and an INTERNAL grandchild."""
    request = ExportTraceServiceRequest()
    ss = request.resource_spans.add()
    ss.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="svc")))
    spans = ss.scope_spans.add().spans
    kinds = (Span.SPAN_KIND_INTERNAL, Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_INTERNAL)
    for t in range(first_id, first_id + count):
        for i, kind in enumerate(kinds):
            span = spans.add()
            span.trace_id = t.to_bytes(16, "big")
            span.span_id = (t * 4 + i + 1).to_bytes(8, "big")
            if i:
                span.parent_span_id = (t * 4 + max(i - 1, 1)).to_bytes(8, "big")
            span.name = "op"
            span.kind = kind
            span.start_time_unix_nano = start + i * 1000
            span.end_time_unix_nano = start + i * 1000 + 5_000_000
    return request


def test_rollups_count_roots_and_server_spans_as_requests_on_both_write_paths(
    pg_dsn: str, pg_conn: psycopg.Connection
) -> None:
    writer = PostgresWriter(pg_dsn)
    start = int(datetime.now(UTC).timestamp()) * 1_000_000_000
    writer.write(Signal.TRACES, _mixed_kinds(1, 10, start))  # new spans only: COPY, rolled up in Python
    writer.write(Signal.TRACES, _mixed_kinds(6, 10, start))  # half redelivered: staging insert, rolled up in SQL
    writer.close()
    assert pg_conn.execute("SELECT count(*) FROM spans").fetchone() == (60,)
    for table in ROLLUP_TABLES:
        row = pg_conn.execute(f"SELECT sum(count)::int, sum(requests)::int FROM {table}").fetchone()
        assert row == (60, 30)  # 15 traces: each root and each SERVER span
