"""The ``postgres`` exporter: the writer (one transaction per request) behind the shared sending queue.

``QueuedExporter`` owns queueing (persistent with ``sending_queue.storage``), retries and timeouts; this
module supplies ``send``: borrow a writer (one connection each, as many as queue consumers), write in a worker
thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime

import psycopg

from collector.component import CreateSettings, Exporter, Host, Request, RetryableError, Signal
from collector.exporters.exporterhelper import QueuedExporter, sender_options

from . import _worker
from .config import PostgresExporterConfig, parse_span
from .database import Database, open_database
from .metrics import UnchangedPoints
from .owners import backfill_owners
from .results import WriteResult
from .retention import ahead_seconds, apply_retention
from .rollups import compact_rollups
from .roots import backfill_roots
from .schema import migrate
from .writer import PostgresWriter, WriterSettings

__all__ = ["PostgresExporter"]


def writer_settings(config: PostgresExporterConfig) -> WriterSettings:
    return WriterSettings(
        partition_interval=parse_span(config.partition.interval),
        premake=config.partition.premake,
        rollup_dimensions=tuple(config.rollup_dimensions),
        statement_timeout=float(config.timeout) if config.timeout > 0 else 0.0,
        retention=config.retention.seconds(),
        allowed_clock_skew=float(config.allowed_clock_skew),
    )


class PostgresExporter(Exporter):
    def __init__(self, settings: CreateSettings, config: PostgresExporterConfig) -> None:
        self.settings = settings
        self.config = config
        self._log = settings.logger
        self._database: Database | None = None
        consumers = config.sending_queue.num_consumers if config.sending_queue.enabled else 4
        self._size = max(1, consumers)
        self._executor = ThreadPoolExecutor(max_workers=self._size + 1, thread_name_prefix="postgres-writer")
        self._pool: asyncio.Queue[PostgresWriter] | None = None
        self._writers: list[PostgresWriter] = []
        self._retention_task: asyncio.Task[None] | None = None
        self._compaction_task: asyncio.Task[None] | None = None
        # Earliest span start (µs) written since the last compaction: its rollup rows may be partial.
        self._dirty_since_us: int | None = None
        # Rollup rows written before migration 0030 whose roots are still to be counted (roots.py): the hour the next
        # pass goes on from (None: the newest), and whether none is left.
        self._roots_before: datetime | None = None
        self._roots_done = False
        self._needs_migration = config.migrate
        self._processes: ProcessPoolExecutor | None = None
        self._writer_settings: WriterSettings | None = None
        self._queued = QueuedExporter(
            settings,
            **sender_options(config),
            send=self._send,
            send_batch=self._send_batch,
            send_payloads=self._send_payloads,
        )
        attrs = {"exporter": str(settings.id)}
        self._attrs = attrs
        self._repaired = settings.meter.create_counter(
            "otelcol_exporter_postgres_repaired_items",
            unit="{item}",
            description="Items stored after repairing values PostgreSQL rejects (NUL, non-finite, range).",
        )
        self._quarantined = settings.meter.create_counter(
            "otelcol_exporter_postgres_quarantined_items",
            unit="{item}",
            description="Items PostgreSQL rejected even after repair, kept in the quarantine table.",
        )

    async def start(self, host: Host) -> None:
        loop = asyncio.get_running_loop()
        self._database = await loop.run_in_executor(self._executor, open_database, self.config)
        self._needs_migration = self.config.migrate
        if self._needs_migration:
            try:
                await loop.run_in_executor(self._executor, self._migrate)
            except psycopg.OperationalError as exc:
                # PostgreSQL down at start: accept data into the queue anyway; migrate before the first write.
                self._log.warning("postgres: cannot migrate now (%s); will retry before writing", exc)
        settings = writer_settings(self.config)
        self._writer_settings = settings
        self._pool = asyncio.Queue()
        if self.config.write_processes > 0:
            self._processes = self._new_process_pool()
            # Spawn and initialise every worker now (imports take a moment), not on the first batches.
            pings = [loop.run_in_executor(self._processes, _worker.ping) for _ in range(self.config.write_processes)]
            await asyncio.gather(*pings)
        else:
            unchanged = UnchangedPoints()
            for _ in range(self._size):
                writer = PostgresWriter(self._database.dsn, settings, unchanged=unchanged)
                self._writers.append(writer)
                self._pool.put_nowait(writer)
        await self._queued.start(host)
        if self.config.retention_check_interval > 0:
            self._retention_task = asyncio.create_task(self._retention_loop())
        if self.config.rollup_compaction_interval > 0:
            self._compaction_task = asyncio.create_task(self._compaction_loop())

    def _migrate(self) -> None:
        assert self._database is not None
        with self._database.connect(autocommit=True, connect_timeout=5) as conn:
            applied = migrate(conn)
        self._needs_migration = False
        if applied:
            self._log.info("postgres: applied migrations %s", ", ".join(f"{m.version:04d}" for m in applied))

    def _new_process_pool(self) -> ProcessPoolExecutor:
        assert self._database is not None and self._writer_settings is not None
        return ProcessPoolExecutor(
            max_workers=self.config.write_processes,
            mp_context=multiprocessing.get_context("spawn"),  # never fork a process running gRPC threads
            initializer=_worker.init,
            initargs=(self._database.dsn, self._writer_settings, logging.getLogger().getEffectiveLevel()),
        )

    def _count(self, signal: Signal, result: WriteResult) -> None:
        start = result.earliest_span_us
        if start is not None and (self._dirty_since_us is None or start < self._dirty_since_us):
            self._dirty_since_us = start
        attrs = {**self._attrs, "signal": signal.value}
        if result.repaired:
            self._repaired.add(result.repaired, attrs)
        if result.quarantined:
            self._quarantined.add(result.quarantined, attrs)
            self._log.warning(
                "postgres: %d %s quarantined: %s",
                result.quarantined,
                signal.item_name,
                "; ".join(result.quarantine_reasons[:3]),
            )

    async def consume(self, signal: Signal, request: Request) -> None:
        await self._queued.consume(signal, request)

    def healthy(self) -> bool:
        return self._queued.healthy()

    @property
    def queue_size(self) -> int:
        return self._queued.queue_size

    @property
    def queue_capacity(self) -> int:
        return self._queued.queue_capacity

    async def _send(self, signal: Signal, request: Request) -> None:
        await self._write(signal, requests=(request,))

    async def _send_batch(self, signal: Signal, requests: Sequence[Request]) -> None:
        await self._write(signal, requests=requests)

    async def _send_payloads(self, signal: Signal, payloads: Sequence[bytes]) -> None:
        await self._write(signal, payloads=payloads)

    async def _write(
        self, signal: Signal, *, requests: Sequence[Request] = (), payloads: Sequence[bytes] | None = None
    ) -> None:
        """One transaction for a batch of requests, decoded or as their protobuf bytes (what the persistent queue
        holds: write processes take them as they are; a writer thread parses them, off the event loop)."""
        pool = self._pool
        if pool is None:
            raise RetryableError("postgres exporter not started")
        if self._needs_migration:
            try:
                await asyncio.get_running_loop().run_in_executor(self._executor, self._migrate)
            except psycopg.OperationalError as exc:
                raise RetryableError(f"postgres: cannot migrate: {exc}") from exc
        if self._processes is not None:
            if payloads is None:
                payloads = [request.SerializeToString() for request in requests]
            result = await self._send_to_process(signal, payloads)
        else:
            writer = await pool.get()
            loop = asyncio.get_running_loop()
            if payloads is not None:
                future = loop.run_in_executor(self._executor, writer.write_payloads, signal, payloads)
            else:
                future = loop.run_in_executor(self._executor, writer.write_batch, signal, requests)
            # The writer goes back to the pool only when its thread is done, even if this send is cancelled by
            # the timeout (a write that still commits is harmless: redelivery is idempotent).
            future.add_done_callback(lambda _f: pool.put_nowait(writer))
            result = await asyncio.shield(future)
        self._count(signal, result)

    async def _send_to_process(self, signal: Signal, payloads: Sequence[bytes]) -> WriteResult:
        assert self._processes is not None
        try:
            future = asyncio.get_running_loop().run_in_executor(self._processes, _worker.write, signal.value, payloads)
            result: WriteResult = await asyncio.shield(future)
        except BrokenProcessPool as exc:  # a worker died (e.g. killed): replace the pool, retry the batch
            self._log.warning("postgres: write process died; restarting the pool")
            broken, self._processes = self._processes, self._new_process_pool()
            broken.shutdown(wait=False, cancel_futures=True)
            raise RetryableError("postgres: write process died") from exc
        return result

    async def _retention_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(self._executor, self._retention_once)
            except (psycopg.Error, OSError) as exc:
                self._log.warning("postgres: retention failed (will retry): %s", exc)
            await asyncio.sleep(float(self.config.retention_check_interval))

    async def _compaction_loop(self) -> None:
        while True:
            await asyncio.sleep(float(self.config.rollup_compaction_interval))
            await self._compact()
            await self._backfill_roots()

    async def _compact(self) -> None:
        """Merge the partial rollup rows of what this process wrote since the last pass (best effort: a pass that
        fails or finds another process compacting is retried next time)."""
        dirty, self._dirty_since_us = self._dirty_since_us, None
        if dirty is None or self._database is None:
            return
        # Hour rows start on the hour: from the hour of the earliest span on.
        since = datetime.fromtimestamp(dirty // 1_000_000 // 3600 * 3600, UTC)
        try:
            done = await asyncio.get_running_loop().run_in_executor(self._executor, self._compact_once, since)
        except (psycopg.Error, OSError) as exc:
            self._log.warning("postgres: rollup compaction failed (will retry): %s", exc)
            done = False
        if not done:
            self._dirty_since_us = dirty if self._dirty_since_us is None else min(dirty, self._dirty_since_us)

    def _compact_once(self, since: datetime) -> bool:
        assert self._database is not None
        with self._database.connect(autocommit=True, connect_timeout=5) as conn:
            # Spans stored before their trace's owner get it now; their rollup counts move (owners.py).
            adopted, changed = backfill_owners(conn, datetime.now(UTC), tuple(self.config.rollup_dimensions))
            if adopted:
                self._log.debug("postgres: %d priced spans took their trace's owner", adopted)
            result = compact_rollups(conn, since if changed is None else min(since, changed))
        if result is not None and result.removed_rows:
            self._log.debug(
                "postgres: merged %d rollup rows into %d since %s", result.removed_rows, result.merged_keys, since
            )
        return result is not None

    async def _backfill_roots(self) -> None:
        """A few hours of the root counts rollup rows written before migration 0030 lack (best effort, like the
        compaction: a failed pass is tried again next time, from the same hour)."""
        if self._roots_done or self._database is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._backfill_roots_once)
        except (psycopg.Error, OSError) as exc:
            self._log.warning("postgres: counting the roots of older rollups failed (will retry): %s", exc)

    def _backfill_roots_once(self) -> None:
        assert self._database is not None
        with self._database.connect(autocommit=True, connect_timeout=5) as conn:
            done = backfill_roots(conn, tuple(self.config.rollup_dimensions), self._roots_before)
        if done.filled:
            self._log.debug("postgres: counted the roots of %d older rollup rows", done.filled)
        self._roots_before = done.before
        self._roots_done = done.before is None and not done.busy

    def _retention_once(self) -> None:
        assert self._database is not None
        with self._database.connect(autocommit=True) as conn:
            result = apply_retention(conn, self.config.retention, ahead=ahead_seconds(self.config))
        if result.dropped_partitions:
            self._log.info("postgres: retention dropped %s", ", ".join(result.dropped_partitions))

    async def shutdown(self) -> None:
        for task in (self._retention_task, self._compaction_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._queued.shutdown()
        if self._compaction_task is not None:
            await self._compact()  # what the last writes appended, so a stopped sink leaves merged rollups
        loop = asyncio.get_running_loop()
        if self._processes is not None:
            await loop.run_in_executor(None, self._processes.shutdown)
            self._processes = None
        for writer in self._writers:
            await loop.run_in_executor(self._executor, writer.close)
        if self._database is not None:
            await loop.run_in_executor(self._executor, self._database.close)
            self._database = None
        self._executor.shutdown(wait=False)


def create_exporter(settings: CreateSettings, config: PostgresExporterConfig) -> Exporter:
    return PostgresExporter(settings, config)
