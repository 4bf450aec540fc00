"""PostgreSQL stopped mid-stream, or too slow: nothing lost, nothing doubled once it is back."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from collector.exporters.exporterhelper.testing import StaticHost
from collector.exporters.postgres import schema
from collector.exporters.postgres.writer import PostgresWriter, WriterSettings
from processors.pipeline import Duration, RetryableError, Signal
from tests.collector.exporters.postgres.test_writer import synthetic_request


@pytest.fixture
def own_server(sink_tmp_path: Path) -> Iterator[Any]:
    """A PostgreSQL of this test's own, so stopping it disturbs nobody."""
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver

    server = pgserver.get_server(sink_tmp_path / "pg", cleanup_mode="stop")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        schema.migrate(conn)
    yield server
    server.cleanup()


def _stop(server: Any) -> None:
    # pgserver makes its command wrappers at import time (setattr on its module): no static name to check.
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)


def _start(server: Any) -> None:
    server.ensure_postgres_running()


def _totals(dsn: str) -> tuple[int, int, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM spans), (SELECT coalesce(sum(count), 0) FROM span_rollups_1m),"
            " (SELECT coalesce(sum(count), 0) FROM span_rollups_1h)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_writer_raises_retryable_while_postgres_is_down_and_loses_nothing(own_server: Any) -> None:
    dsn = own_server.get_uri()
    writer = PostgresWriter(dsn, WriterSettings(connect_timeout=2))
    batches = [synthetic_request(100, seed=40 + i) for i in range(8)]
    failures = 0
    for index, request in enumerate(batches):
        if index == 3:
            _stop(own_server)
        deadline = time.monotonic() + 60
        while True:  # what the sending queue does: keep the request, retry until it is written
            try:
                writer.write(Signal.TRACES, request)
                break
            except RetryableError:
                failures += 1
                if failures == 3:  # PostgreSQL comes back after a while
                    _start(own_server)
                assert time.monotonic() < deadline
    assert failures >= 3
    # A redelivery of everything (as after a crash before the queue recorded the acks) changes nothing.
    for request in batches:
        writer.write(Signal.TRACES, request)
    assert _totals(dsn) == (800, 800, 800)


def test_slow_postgres_times_out_as_retryable(pg_dsn: str) -> None:
    writer = PostgresWriter(pg_dsn, WriterSettings(statement_timeout=0.5))
    writer.write(Signal.TRACES, synthetic_request(10, seed=50))  # connect and premake partitions first
    with psycopg.connect(pg_dsn) as blocker:
        blocker.execute("LOCK TABLE span_rollups_1m IN ACCESS EXCLUSIVE MODE")  # held until rollback
        with pytest.raises(RetryableError, match=r"QueryCanceled|statement timeout"):
            writer.write(Signal.TRACES, synthetic_request(10, seed=51))
        blocker.rollback()
    writer.write(Signal.TRACES, synthetic_request(10, seed=51))
    assert _totals(pg_dsn) == (20, 20, 20)


def test_exporter_queue_keeps_data_while_postgres_is_down(own_server: Any) -> None:
    from collector.component import ComponentID, CreateSettings
    from collector.exporters.exporterhelper import QueueConfig, RetryConfig
    from collector.exporters.postgres.config import PostgresExporterConfig
    from collector.exporters.postgres.exporter import PostgresExporter

    dsn = own_server.get_uri()
    config = PostgresExporterConfig(
        dsn=dsn,
        retention_check_interval=Duration(0),
        retry_on_failure=RetryConfig(
            initial_interval=Duration(0.05), max_interval=Duration(0.2), max_elapsed_time=Duration(0)
        ),
        sending_queue=QueueConfig(num_consumers=2, queue_size=100),
    )
    batches = [synthetic_request(50, seed=60 + i) for i in range(10)]

    async def scenario() -> None:
        exporter = PostgresExporter(CreateSettings(ComponentID("postgres"), Signal.TRACES), config)
        await exporter.start(StaticHost())
        try:
            for request in batches[:3]:
                await exporter.consume(Signal.TRACES, request)
            await _wait_for(lambda: _totals(dsn)[0] == 150)
            await asyncio.to_thread(_stop, own_server)
            for request in batches[3:]:
                await exporter.consume(Signal.TRACES, request)  # accepted into the queue while PG is down
            await asyncio.sleep(0)  # let consumers fail against the stopped server at least once
            await asyncio.to_thread(_start, own_server)
            await _wait_for(lambda: _totals(dsn)[0] == 500)
        finally:
            await exporter.shutdown()

    asyncio.run(scenario())
    assert _totals(dsn) == (500, 500, 500)


async def _wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await asyncio.to_thread(condition):
                return
        except psycopg.Error:  # down, or not migrated yet
            pass
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.05)


def test_exporter_starts_while_postgres_is_down_and_migrates_when_it_returns(own_server: Any) -> None:
    from collector.component import ComponentID, CreateSettings
    from collector.exporters.exporterhelper import QueueConfig, RetryConfig
    from collector.exporters.postgres.config import PostgresExporterConfig
    from collector.exporters.postgres.exporter import PostgresExporter

    with psycopg.connect(own_server.get_uri(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE fresh")  # never migrated
    dsn = own_server.get_uri(database="fresh")
    _stop(own_server)
    config = PostgresExporterConfig(
        dsn=dsn,
        retention_check_interval=Duration(0),
        retry_on_failure=RetryConfig(
            initial_interval=Duration(0.05), max_interval=Duration(0.2), max_elapsed_time=Duration(0)
        ),
        sending_queue=QueueConfig(num_consumers=1, queue_size=10),
    )

    async def scenario() -> None:
        exporter = PostgresExporter(CreateSettings(ComponentID("postgres"), Signal.TRACES), config)
        await exporter.start(StaticHost())  # does not fail: the data waits in the queue
        try:
            for seed in (70, 71):
                await exporter.consume(Signal.TRACES, synthetic_request(25, seed=seed))
            await asyncio.to_thread(_start, own_server)
            await _wait_for(lambda: _totals(dsn)[0] == 50)
        finally:
            await exporter.shutdown()

    asyncio.run(scenario())
    assert _totals(dsn) == (50, 50, 50)


def test_exporter_with_write_processes(pg_dsn: str) -> None:
    from collector.component import ComponentID, CreateSettings
    from collector.exporters.postgres.config import PostgresExporterConfig
    from collector.exporters.postgres.exporter import PostgresExporter

    config = PostgresExporterConfig(dsn=pg_dsn, write_processes=1, retention_check_interval=Duration(0))
    request = synthetic_request(30, seed=80)
    bad = request.resource_spans[0].scope_spans[0].spans[0]
    bad.name = "nul\x00name"  # repaired in the worker, counted here

    async def scenario() -> None:
        exporter = PostgresExporter(CreateSettings(ComponentID("postgres"), Signal.TRACES), config)
        await exporter.start(StaticHost())
        try:
            await exporter.consume(Signal.TRACES, request)
            await exporter.consume(Signal.TRACES, request)  # redelivery through the worker's staging path
            await exporter.consume(Signal.TRACES, synthetic_request(20, seed=81))
            await _wait_for(lambda: _totals(pg_dsn)[0] == 50)
        finally:
            await exporter.shutdown()

    asyncio.run(scenario())
    assert _totals(pg_dsn) == (50, 50, 50)
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM spans WHERE name = 'nulname'").fetchone() == (1,)
