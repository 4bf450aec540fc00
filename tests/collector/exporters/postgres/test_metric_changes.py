"""The sink stores a cumulative stream again only when it changed: spanmetrics re-sends every series each flush."""

from __future__ import annotations

import time

import psycopg
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from collector.component import ComponentID, CreateSettings, Signal
from collector.connectors.spanmetrics import SpanMetricsConfig, SpanMetricsConnector
from collector.connectors.spanmetrics.config import DELTA
from collector.exporters.postgres.metrics import UnchangedPoints
from collector.exporters.postgres.writer import PostgresWriter
from tests.collector.connectors.spanmetrics.test_spanmetrics import named_spans


def flushes(config: SpanMetricsConfig, batches: list[range]) -> list[ExportMetricsServiceRequest]:
    """What the connector emits at each flush, fed one batch of span names before each."""
    connector = SpanMetricsConnector(CreateSettings(ComponentID("spanmetrics"), Signal.TRACES), config, None)  # type: ignore[arg-type]
    out = []
    for i, names in enumerate(batches):
        connector.aggregate(named_spans(names))
        out.append(connector.build_request(time.time_ns() + i * 15 * 10**9))  # flushes 15 s apart
    return out


def rows(conn: psycopg.Connection) -> int:
    found = conn.execute("SELECT count(*) FROM metric_points").fetchone()
    assert found is not None
    return int(found[0])


def test_unchanged_cumulative_series_are_not_stored_again(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    config = SpanMetricsConfig(aggregation_cardinality_limit=0)
    first, second, third = flushes(config, [range(5000), range(0), range(3)])
    writer = PostgresWriter(pg_dsn)
    assert writer.write(Signal.METRICS, first).inserted == 10_000  # calls + duration per name
    again = writer.write(Signal.METRICS, second)  # the same 10,000 series, nothing new
    assert (again.items, again.unchanged, again.inserted) == (10_000, 10_000, 0)
    changed = writer.write(Signal.METRICS, third)  # three names saw spans again
    assert (changed.unchanged, changed.inserted) == (9_994, 6)
    assert rows(pg_conn) == 10_006
    latest = pg_conn.execute(
        "SELECT value FROM metric_points WHERE metric_name = 'traces.span.metrics.calls'"
        " AND attributes->>'span.name' = 'op-1' ORDER BY time DESC LIMIT 1"
    ).fetchone()
    assert latest == (2.0,)


def test_delta_points_are_always_stored(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    config = SpanMetricsConfig(aggregation_temporality=DELTA)
    first, second = flushes(config, [range(10), range(10)])  # the same increments twice: both count
    writer = PostgresWriter(pg_dsn)
    assert writer.write(Signal.METRICS, first).inserted == 20
    assert writer.write(Signal.METRICS, second).inserted == 20
    assert rows(pg_conn) == 40


def test_a_failed_write_hides_nothing_later(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    (first,) = flushes(SpanMetricsConfig(), [range(5)])
    unchanged = UnchangedPoints()
    writer = PostgresWriter(pg_dsn, unchanged=unchanged)
    pg_conn.execute("ALTER TABLE metric_points RENAME TO metric_points_away")
    try:
        writer.write(Signal.METRICS, first)
    except Exception:  # the table is missing: this write fails
        pass
    else:
        raise AssertionError("the write should have failed")
    finally:
        pg_conn.execute("ALTER TABLE metric_points_away RENAME TO metric_points")
    assert len(unchanged) == 0
    writer = PostgresWriter(pg_dsn, unchanged=unchanged)  # a fresh connection: the old one saw the table renamed
    assert writer.write(Signal.METRICS, first).inserted == 10
