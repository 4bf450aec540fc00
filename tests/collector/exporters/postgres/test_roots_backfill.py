"""The sink counts the roots of rollup rows written before migration 0030 in its background maintenance, also when
it writes nothing (an upgraded sink before its first batch); the full upgrade, through the pages, API and CLI, is
tests/collector/analytics/test_cost_per_request.py."""

from __future__ import annotations

import asyncio
import time

import psycopg

from collector.component import ComponentID, CreateSettings
from collector.exporters.exporterhelper.testing import StaticHost
from collector.exporters.postgres.config import PostgresExporterConfig
from collector.exporters.postgres.exporter import PostgresExporter
from collector.exporters.postgres.writer import PostgresWriter
from processors.pipeline import Duration, Signal
from tests.collector.exporters.postgres.test_writer import synthetic_request

_COUNTED = (
    "SELECT count(*) FILTER (WHERE roots IS NULL), coalesce(sum(roots), 0),"
    " (SELECT count(*) FROM spans WHERE parent_span_id IS NULL) FROM {}"
)


def _counted(dsn: str, table: str) -> tuple[int, int, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(_COUNTED.format(table)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_an_idle_sink_counts_the_roots_older_rollup_rows_lack(pg_dsn: str) -> None:
    writer = PostgresWriter(pg_dsn)
    try:
        for seed in (90, 91):
            writer.write(Signal.TRACES, synthetic_request(40, seed=seed))
    finally:
        writer.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for table in ("span_rollups_1m", "span_rollups_1h"):
            conn.execute(f"UPDATE {table} SET roots = NULL")  # as 0030 leaves older rows
    uncounted = _counted(pg_dsn, "span_rollups_1h")
    assert uncounted[0] > 0 and uncounted[1] == 0 and uncounted[2] > 0
    config = PostgresExporterConfig(
        dsn=pg_dsn, retention_check_interval=Duration(0), rollup_compaction_interval=Duration(0.05)
    )

    async def scenario() -> None:
        exporter = PostgresExporter(CreateSettings(ComponentID("postgres"), Signal.TRACES), config)
        await exporter.start(StaticHost())
        deadline = time.monotonic() + 60
        try:
            while (await asyncio.to_thread(_counted, pg_dsn, "span_rollups_1h"))[0]:
                assert time.monotonic() < deadline, "roots not counted before the deadline"
                await asyncio.sleep(0.05)
        finally:
            await exporter.shutdown()

    asyncio.run(scenario())
    for table in ("span_rollups_1m", "span_rollups_1h"):
        nulls, roots, raw = _counted(pg_dsn, table)
        assert (nulls, roots) == (0, raw), table
