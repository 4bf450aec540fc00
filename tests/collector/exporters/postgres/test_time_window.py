"""Time checked at the door: items outside [now - retention, now + allowed_clock_skew] are quarantined, not stored,
and one batch creates at most a few partitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.confmap.sections import decode_section
from collector.exporters.postgres.config import PostgresExporterConfig
from collector.exporters.postgres.writer import MAX_NEW_PARTITION_RANGES, PostgresWriter, WriterSettings
from processors.pipeline import Duration, RetryableError, Signal

DAY_NS = 86_400 * 10**9
YEAR_2554_NS = 2**64 - 1  # the largest OTLP timestamp: 2554-07-21


def spans_at(starts_ns: list[int], name: str = "op") -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "svc"
    spans = rs.scope_spans.add().spans
    for i, start in enumerate(starts_ns):
        spans.add(
            trace_id=(i + 1).to_bytes(16, "big"),
            span_id=(i + 1).to_bytes(8, "big"),
            name=name,
            kind=Span.SpanKind.SPAN_KIND_SERVER,
            start_time_unix_nano=start,
            end_time_unix_nano=min(start + 10**6, YEAR_2554_NS),
        )
    return request


def now_ns() -> int:
    return int(datetime.now(UTC).timestamp() * 10**9)


def partitions(conn: psycopg.Connection) -> int:
    found = conn.execute("SELECT count(*) FROM otel_partitions").fetchone()
    assert found is not None
    return int(found[0])


def quarantined(conn: psycopg.Connection) -> list[tuple[str, str, datetime]]:
    return conn.execute(
        "SELECT signal, reason, item_time FROM quarantine WHERE action = 'quarantined' ORDER BY item_time"
    ).fetchall()


def test_defaults_and_validation() -> None:
    config = PostgresExporterConfig()
    assert float(config.allowed_clock_skew) == 3600.0
    assert WriterSettings().allowed_clock_skew == 3600.0
    assert WriterSettings().retention == {"traces": 30 * 86400.0, "metrics": 30 * 86400.0, "logs": 14 * 86400.0}
    errors: list[str] = []
    decode_section(PostgresExporterConfig, {"allowed_clock_skew": -1}, "exporters.postgres", errors)
    assert errors == ["exporters.postgres.allowed_clock_skew: must be >= 0, got -1.0"]


def test_200_spans_on_200_future_days_create_no_partition(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    writer = PostgresWriter(pg_dsn)
    writer.write(Signal.TRACES, spans_at([now_ns()]))  # premade partitions exist
    before = partitions(pg_conn)
    base = now_ns() + 2 * 3600 * 10**9  # beyond the hour of allowed skew
    result = writer.write(Signal.TRACES, spans_at([base + d * DAY_NS for d in range(200)], "future"))
    assert (result.items, result.inserted, result.quarantined) == (200, 0, 200)
    assert partitions(pg_conn) == before
    rows = quarantined(pg_conn)
    assert len(rows) == 200 and all(s == "traces" for s, _, _ in rows)
    assert "is after now + allowed_clock_skew (1h): not stored" in rows[0][1]
    assert rows[0][2] == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=base // 1000)
    # Redelivered: nothing stored, nothing recorded twice.
    assert writer.write(Signal.TRACES, spans_at([base + d * DAY_NS for d in range(200)], "future")).inserted == 0
    assert len(quarantined(pg_conn)) == 200


def test_a_2554_span_and_a_1970_span_are_quarantined_next_to_stored_ones(
    pg_dsn: str, pg_conn: psycopg.Connection
) -> None:
    writer = PostgresWriter(pg_dsn)
    request = spans_at([now_ns(), YEAR_2554_NS - 10**6, 10**9])  # now, 2554, 1970-01-01T00:00:01
    result = writer.write(Signal.TRACES, request)
    assert (result.inserted, result.quarantined) == (1, 2)
    assert pg_conn.execute("SELECT count(*) FROM spans").fetchone() == (1,)
    (old, future) = quarantined(pg_conn)
    assert old[1] == "start_time 1970-01-01T00:00:01Z is before now - retention (30d): not stored"
    assert future[1].startswith("start_time 2554-07-21T") and future[2].year == 2554
    item = pg_conn.execute("SELECT item FROM quarantine WHERE item_time = %s", (old[2],)).fetchone()
    assert (
        item is not None
        and Span.FromString(item[0]).span_id == request.resource_spans[0].scope_spans[0].spans[2].span_id
    )
    assert pg_conn.execute(
        "SELECT count(*) FROM otel_partitions WHERE range_start < now() - interval '1 year'"
        " OR range_start > now() + interval '1 year'"
    ).fetchone() == (0,)


def test_a_span_ending_far_in_the_future_is_quarantined(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    request = spans_at([now_ns()])
    request.resource_spans[0].scope_spans[0].spans[0].end_time_unix_nano = YEAR_2554_NS
    assert PostgresWriter(pg_dsn).write(Signal.TRACES, request).quarantined == 1
    assert quarantined(pg_conn)[0][1].startswith("end_time 2554-07-21T")


def test_metric_points_and_logs_are_checked_too(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    metrics = ExportMetricsServiceRequest()
    gauge = metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="queue.depth").gauge
    gauge.data_points.add(time_unix_nano=now_ns(), as_int=1)
    gauge.data_points.add(time_unix_nano=YEAR_2554_NS, as_int=2)
    logs = ExportLogsServiceRequest()
    records = logs.resource_logs.add().scope_logs.add().log_records
    records.add(time_unix_nano=now_ns())
    records.add(time_unix_nano=now_ns() - 15 * DAY_NS)  # logs are kept 14 days
    writer = PostgresWriter(pg_dsn)
    assert (writer.write(Signal.METRICS, metrics).inserted, writer.write(Signal.LOGS, logs).inserted) == (1, 1)
    reasons = {s: r for s, r, _ in quarantined(pg_conn)}
    assert reasons["metrics"].startswith("time 2554-07-21T") and "allowed_clock_skew (1h)" in reasons["metrics"]
    assert "is before now - retention (14d)" in reasons["logs"]


def test_retention_forever_has_no_lower_bound(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    writer = PostgresWriter(pg_dsn, WriterSettings(retention={}))
    assert writer.write(Signal.TRACES, spans_at([10**9])).inserted == 1
    assert writer.write(Signal.TRACES, spans_at([YEAR_2554_NS - 10**6], "future")).quarantined == 1


def test_a_backfill_creates_a_few_partitions_per_batch(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    writer = PostgresWriter(pg_dsn, WriterSettings(retention={"traces": 400 * 86400.0}))
    writer.write(Signal.TRACES, spans_at([now_ns()]))
    start = partitions(pg_conn)
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    days = [int((today - timedelta(days=d)).timestamp() * 10**9) for d in range(10, 210)]
    request = spans_at(days, "backfill")
    attempts = 0
    while True:
        attempts += 1
        before = partitions(pg_conn)
        try:
            result = writer.write(Signal.TRACES, request)
        except RetryableError as exc:  # what the sending queue retries
            assert "new partition ranges" in str(exc)
            assert partitions(pg_conn) - before == 3 * MAX_NEW_PARTITION_RANGES  # spans, events, links
            continue
        break
    assert attempts == 200 // MAX_NEW_PARTITION_RANGES  # the last attempt creates the last few
    assert result.inserted == 200 and partitions(pg_conn) == start + 3 * 200


@pytest.mark.parametrize("skew", [0.0, 600.0])
def test_allowed_clock_skew_and_retention_reach_the_writer(skew: float) -> None:
    from collector.exporters.postgres.config import RetentionConfig
    from collector.exporters.postgres.exporter import writer_settings

    config = PostgresExporterConfig(allowed_clock_skew=Duration(skew), retention=RetentionConfig(logs="2d"))
    settings = writer_settings(config)
    assert settings.allowed_clock_skew == skew
    assert settings.retention == {"traces": 30 * 86400.0, "metrics": 30 * 86400.0, "logs": 2 * 86400.0}


def test_retention_drops_partitions_outside_the_window_made_before_the_door_checked(
    pg_dsn: str, pg_conn: psycopg.Connection
) -> None:
    """Partitions an older version (no check at the door) or a larger skew made, for a span dated 2554, 200 days
    ahead or 1970, are dropped by retention with their rows and rollups; today's and the premade ones stay."""
    from collector.exporters.postgres.config import RetentionConfig
    from collector.exporters.postgres.retention import ahead_seconds, apply_retention

    forever = 600 * 365 * 86400.0
    lax = PostgresWriter(pg_dsn, WriterSettings(retention={}, allowed_clock_skew=forever))
    for start in (now_ns(), now_ns() + 200 * DAY_NS, YEAR_2554_NS - 10**6, 10**9):
        assert lax.write(Signal.TRACES, spans_at([start])).inserted == 1
    made = {r[0] for r in pg_conn.execute("SELECT partition FROM otel_partitions WHERE parent = 'spans'")}
    assert {"spans_p25540721", "spans_p19700101"} <= made
    ahead_rollups = "SELECT count(*) FROM span_rollups_1h WHERE bucket_start > now() + interval '1 day'"
    assert pg_conn.execute(ahead_rollups).fetchone() != (0,)
    today = datetime.now(UTC)
    premade = {f"spans_p{today + timedelta(days=d):%Y%m%d}" for d in range(4)}
    assert premade <= made

    config = PostgresExporterConfig()
    result = apply_retention(pg_conn, RetentionConfig(), ahead=ahead_seconds(config))
    assert ahead_seconds(config) == 4 * 86400.0  # today and 3 premade days; more than the hour of skew
    far = today + timedelta(days=200)
    dropped = set(result.dropped_partitions)
    assert {"spans_p25540721", "spans_p19700101", f"spans_p{far:%Y%m%d}", f"span_events_p{far:%Y%m%d}"} <= dropped
    left = {r[0] for r in pg_conn.execute("SELECT partition FROM otel_partitions WHERE parent = 'spans'")}
    assert left == premade
    assert pg_conn.execute("SELECT count(*) FROM spans").fetchone() == (1,)
    assert pg_conn.execute(
        "SELECT count(*) FROM span_rollups_1h WHERE bucket_start > now() + interval '4 days'"
        " OR bucket_start < now() - interval '40 days'"
    ).fetchone() == (0,)
    assert pg_conn.execute("SELECT to_regclass('spans_p25540721')").fetchone() == (None,)
