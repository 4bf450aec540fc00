"""Writes OTLP requests in one transaction (spans: 10,000 a transaction): COPY into staging tables, idempotent inserts.

Spans: ``INSERT … ON CONFLICT DO NOTHING RETURNING`` feeds the rollups, so redelivered spans change nothing.
Metric points and log records are idempotent on their natural keys too. Items dated outside
``[now - retention, now + allowed_clock_skew]`` are quarantined (``timewindow``); partitions for the other items'
time ranges are created (on demand, in their own short transaction, at most ``MAX_NEW_PARTITION_RANGES`` per batch)
before the batch transaction starts.

Errors: an unreachable, failing or slow server raises ``RetryableError`` (the sending queue keeps the request
and retries). Data PostgreSQL still rejects after the repairs in ``_values`` is retried item by item, each in
a savepoint, and the items that fail alone go to the ``quarantine`` table: a bad item never blocks its batch.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from processors.pipeline import Request, RetryableError, Signal, parse_request

from . import calls as _calls
from . import logs as _logs
from . import metrics as _metrics
from . import owners as _owners
from . import sampling as _sampling
from . import traces as _traces
from ._dumpers import register_dumpers
from .config import DEFAULT_ALLOWED_CLOCK_SKEW, RetentionConfig
from .results import WriteResult
from .rollups import ROLLUP_COLUMNS, aggregate, insert_spans_sql
from .span_columns import span_position
from .timewindow import Late, TimeWindow

__all__ = ["MAX_NEW_PARTITION_RANGES", "PostgresWriter", "WriterSettings"]

_LOGGER = logging.getLogger("otel_metrics.collector.postgres")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_pack_q = struct.Struct("!q").pack

DEFAULT_PARTITION_INTERVAL = 86_400.0
DEFAULT_PREMAKE = 3
DEFAULT_STATEMENT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 5.0
# Premake/refresh partitions at most this often per writer.
_PREMAKE_EVERY = 600.0
# Partition intervals (each a partition of every table of the signal) one batch may create; a batch needing more is
# retried (RetryableError) after creating these, so a backfill makes progress a few partitions at a time.
MAX_NEW_PARTITION_RANGES = 4
# The timestamps that place a row in the time window, by row index: spans' start and end, points' and logs' time.
_SPAN_TIMES = tuple((span_position(c), c) for c in ("start_time", "end_time"))
_START = _SPAN_TIMES[0][0]
_ITEM_TIME = ((1, "time"),)


@dataclass
class WriterSettings:
    partition_interval: float = DEFAULT_PARTITION_INTERVAL  # seconds
    premake: int = DEFAULT_PREMAKE
    rollup_dimensions: Sequence[str] = ("tenant_id", "agent_name", "model")
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    application_name: str = "otel-metrics-sink"
    # Seconds each signal ("traces", "metrics", "logs") is kept: older items are quarantined (absent or 0: forever).
    retention: dict[str, float] = field(default_factory=lambda: RetentionConfig().seconds())
    # Seconds an item may be dated after now (a client clock running ahead); later items are quarantined.
    allowed_clock_skew: float = float(DEFAULT_ALLOWED_CLOCK_SKEW)

    def window(self, signal: Signal) -> TimeWindow:
        return TimeWindow(self.retention.get(signal.value, 0.0), self.allowed_clock_skew)


@dataclass(frozen=True)
class _Table:
    name: str
    staging: str
    columns: tuple[tuple[str, str], ...]

    @property
    def column_list(self) -> str:
        return ", ".join(c for c, _ in self.columns)

    @property
    def copy_sql(self) -> str:
        return f"COPY {self.staging} ({self.column_list}) FROM STDIN (FORMAT BINARY)"

    @property
    def direct_copy_sql(self) -> str:
        return f"COPY {self.name} ({self.column_list}) FROM STDIN (FORMAT BINARY)"

    @property
    def types(self) -> list[str]:
        return [t for _, t in self.columns]

    def create_staging_sql(self) -> str:
        cols = ", ".join(f"{c} {t}" for c, t in self.columns)
        return f"CREATE TEMP TABLE IF NOT EXISTS {self.staging} ({cols}) ON COMMIT DELETE ROWS"

    def insert_sql(self) -> str:
        cols = self.column_list
        return f"INSERT INTO {self.name} ({cols}) SELECT {cols} FROM {self.staging} ON CONFLICT DO NOTHING"


_SPANS = _Table("spans", "_otel_stage_spans", _traces.SPAN_COLUMNS)
_EVENTS = _Table("span_events", "_otel_stage_span_events", _traces.EVENT_COLUMNS)
_LINKS = _Table("span_links", "_otel_stage_span_links", _traces.LINK_COLUMNS)
_POINTS = _Table("metric_points", "_otel_stage_metric_points", _metrics.POINT_COLUMNS)
_LOGS = _Table("logs", "_otel_stage_logs", _logs.LOG_COLUMNS)
# Rollup rows are COPYed straight into their tables (appends): no staging table.
_ROLLUPS_1M = _Table("span_rollups_1m", "", ROLLUP_COLUMNS)
_ROLLUPS_1H = _Table("span_rollups_1h", "", ROLLUP_COLUMNS)
_UNSAMPLED_1H = _Table(_sampling.UNSAMPLED_TABLE, "", _sampling.UNSAMPLED_COLUMNS)
_STAGED = (_SPANS, _EVENTS, _LINKS, _POINTS, _LOGS)
# Partitioned tables and the tables partitioned alongside them.
PARTITIONED_TABLES: dict[Signal, tuple[str, ...]] = {
    Signal.TRACES: ("spans", "span_events", "span_links"),
    Signal.METRICS: ("metric_points",),
    Signal.LOGS: ("logs",),
}
# Errors caused by the data of some item: retried item by item, failures quarantined.
_DATA_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.DataError,
    psycopg.IntegrityError,
    psycopg.errors.ProgramLimitExceeded,
    UnicodeError,
    ValueError,
    OverflowError,
    struct.error,
    TypeError,
)
_QUARANTINE_SQL = (
    "INSERT INTO quarantine (signal, action, reason, item_key, trace_id, span_id, item, item_time)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (signal, action, item_key) DO NOTHING"
)


@contextlib.contextmanager
def _gc_paused() -> Any:
    """Turning a batch into rows allocates ~50 objects per item and no reference cycles; the cyclic GC
    would rescan the growing batch over and over (measured: 1.6x slower). Paused for a whole write, which frees the
    batch's objects before the GC runs again: re-enabled while they were alive, its next young collection scanned
    them all (10 % of the writer's CPU)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _is_missing_partition(exc: BaseException) -> bool:
    return isinstance(exc, pg_errors.CheckViolation) and "no partition" in str(exc)


class PostgresWriter:
    """One connection; ``write`` is synchronous and not thread-safe (use one writer per worker thread)."""

    def __init__(
        self,
        dsn: str,
        settings: WriterSettings | None = None,
        on_repair: Callable[[Signal, str], None] | None = None,
        unchanged: _metrics.UnchangedPoints | None = None,
    ) -> None:
        self.dsn = dsn
        self.settings = settings or WriterSettings()
        self._conn: psycopg.Connection[Any] | None = None
        self._partitions: set[tuple[str, int]] = set()
        self._interval_us = int(self.settings.partition_interval * 1_000_000)
        self._last_premake = 0.0
        self._spans_sql = insert_spans_sql(
            _SPANS.staging, [c for c, _ in _SPANS.columns], self.settings.rollup_dimensions
        )
        self._on_repair = on_repair
        # Shared by the writers of one process, so a stream re-sent unchanged is skipped whichever writer gets it.
        self._unchanged = unchanged if unchanged is not None else _metrics.UnchangedPoints()

    # -- connection ----------------------------------------------------------------------------------------
    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        conn = psycopg.connect(
            self.dsn,
            autocommit=True,
            connect_timeout=max(1, int(self.settings.connect_timeout)),
            application_name=self.settings.application_name,
        )
        try:
            register_dumpers(conn)
            conn.execute(f"SET statement_timeout = {int(self.settings.statement_timeout * 1000)}")
            conn.execute("SET TIME ZONE 'UTC'")
            for table in _STAGED:
                conn.execute(table.create_staging_sql())
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._partitions.clear()
        self._last_premake = 0.0
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _reset(self) -> None:
        try:
            self.close()
        except Exception:  # already broken; nothing more to release
            self._conn = None

    # -- public --------------------------------------------------------------------------------------------
    def write(self, signal: Signal, request: Request) -> WriteResult:
        """Write ``request`` in one transaction. Raises RetryableError when PostgreSQL is unavailable or
        slow."""
        return self.write_batch(signal, (request,))

    def write_payloads(self, signal: Signal, payloads: Sequence[bytes]) -> WriteResult:
        """``write_batch`` for requests given as their protobuf bytes (as a persistent queue holds them): parsed
        here, in the writer's thread or process."""
        requests = [parse_request(signal, payload) for payload in payloads]
        return self.write_batch(signal, requests, payloads)

    def write_batch(
        self, signal: Signal, requests: Sequence[Request], wires: Sequence[bytes] | None = None
    ) -> WriteResult:
        """Write ``requests`` (of one signal) in one transaction (spans: one per 10,000); ``wires``:
        the bytes they were parsed from, if at hand. Raises RetryableError when PostgreSQL is unavailable or slow."""
        with _gc_paused():
            return self._write_batch(signal, requests, wires)

    def _write_batch(self, signal: Signal, requests: Sequence[Request], wires: Sequence[bytes] | None) -> WriteResult:
        try:
            conn = self._connection()
            self._premake(conn)
            if signal is Signal.TRACES:
                started = time.perf_counter()
                result = self._write_traces(conn, requests, wires)
                if _LOGGER.isEnabledFor(logging.DEBUG):
                    _LOGGER.debug(
                        "postgres: %d spans (%d new) in %.1f ms",
                        result.items,
                        result.inserted,
                        (time.perf_counter() - started) * 1000,
                    )
                return result
            if signal is Signal.METRICS:
                points = [p for request in requests for p in _metrics.point_records(request)]
                return self._write_generic(conn, Signal.METRICS, _POINTS, points, self._unchanged)
            logs = [r for request in requests for r in _logs.log_records(request)]
            return self._write_generic(conn, Signal.LOGS, _LOGS, logs)
        except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
            # Connection lost, server shutting down, statement timeout, deadlock, serialization failure:
            # all transient. The queue keeps the request and retries it.
            self._reset()
            raise RetryableError(f"postgres: {type(exc).__name__}: {exc}".strip()) from exc

    def ensure_partitions(
        self,
        conn: psycopg.Connection[Any],
        tables: Sequence[str],
        starts_us: Iterable[int],
        limit: int | None = None,
    ) -> None:
        """Partitions of ``tables`` for the intervals holding ``starts_us``. With ``limit``, at most that many
        intervals not yet known are created, then ``RetryableError`` if more were needed."""
        interval = self._interval_us
        step = timedelta(microseconds=interval)
        bins = sorted({s - s % interval for s in starts_us})
        if limit is not None:
            new = [b for b in bins if any((t, b) not in self._partitions for t in tables)]
            if len(new) > limit:
                self.ensure_partitions(conn, tables, new[:limit])
                raise RetryableError(
                    f"postgres: batch needs {len(new)} new partition ranges; created {limit}, the rest on retry"
                )
        for table in tables:
            for b in bins:
                if (table, b) in self._partitions:
                    continue
                conn.execute(
                    "SELECT otel_ensure_partition(%s, %s, %s)",
                    (table, datetime.fromtimestamp(b / 1e6, UTC), step),
                )
                self._partitions.add((table, b))

    # -- internals -----------------------------------------------------------------------------------------
    def _premake(self, conn: psycopg.Connection[Any]) -> None:
        now = time.monotonic()
        if self._last_premake and now - self._last_premake < _PREMAKE_EVERY:
            return
        now_us = time.time_ns() // 1000
        starts = [now_us + i * self._interval_us for i in range(self.settings.premake + 1)]
        for tables in PARTITIONED_TABLES.values():
            self.ensure_partitions(conn, tables, starts)
        self._last_premake = now

    def _copy(
        self, conn: psycopg.Connection[Any], table: _Table, rows: Iterable[tuple[Any, ...]], direct: bool = False
    ) -> None:
        with conn.cursor() as cur, cur.copy(table.direct_copy_sql if direct else table.copy_sql) as copy:
            copy.set_types(table.types)
            write_row = copy.write_row
            for row in rows:
                write_row(row)

    def _write_traces(
        self, conn: psycopg.Connection[Any], requests: Sequence[Request], wires: Sequence[bytes] | None
    ) -> WriteResult:
        result = WriteResult()
        for chunk in _traces.span_record_chunks(requests, wires, _traces.MAX_SPANS_PER_WRITE):
            result.add(self._write_span_chunk(conn, chunk))
        return result

    def _write_span_chunk(self, conn: psycopg.Connection[Any], records: list[_traces.SpanRecord]) -> WriteResult:
        result = WriteResult(items=len(records))
        records = self._admit(conn, Signal.TRACES, records, _SPAN_TIMES, result)
        if not records:
            return result
        _sampling.inherit_weights(records)
        _owners.inherit_owners(conn, records)
        self._store_spans(conn, records, result)
        # Spans of this batch and stored spans of the same traces share their trace's sampling weight.
        _sampling.spread_trace_weights(conn, records, self.settings.rollup_dimensions)
        return result

    def _store_spans(
        self, conn: psycopg.Connection[Any], records: Sequence[_traces.SpanRecord], result: WriteResult
    ) -> WriteResult:
        tables = PARTITIONED_TABLES[Signal.TRACES]
        self.ensure_partitions(conn, tables, {r.row[_START] for r in records}, MAX_NEW_PARTITION_RANGES)
        for attempt in (0, 1):
            try:
                if self._copy_spans_directly(conn, records, result):
                    return result
                with conn.transaction():
                    result.inserted = self._insert_spans(conn, records)
                    result.earliest_span_us = min(r.row[_START] for r in records) if result.inserted else None
                    self._record_repairs(conn, Signal.TRACES, records, result)
                return result
            except _DATA_ERRORS as exc:
                if _is_missing_partition(exc) and attempt == 0:
                    # A partition was dropped (retention) after we cached it: forget and re-create.
                    self._partitions.clear()
                    self.ensure_partitions(conn, tables, {r.row[_START] for r in records}, MAX_NEW_PARTITION_RANGES)
                    continue
                _LOGGER.warning("postgres: batch of %d spans rejected (%s); retrying span by span", len(records), exc)
                break
        result.inserted = 0
        return self._write_traces_one_by_one(conn, records, result)

    def _copy_spans_directly(
        self, conn: psycopg.Connection[Any], records: Sequence[_traces.SpanRecord], result: WriteResult
    ) -> bool:
        """Fast path: COPY straight into the tables and roll up in Python; False if any span already exists.

        Most batches hold only new spans; a COPY into ``spans`` then costs what a raw COPY costs. A redelivered
        span violates the primary key, the whole transaction rolls back, and the caller takes the staging path
        (``INSERT … ON CONFLICT DO NOTHING``), which rolls up only what it inserted.
        """
        try:
            with conn.transaction():
                _calls.fold_repeated_calls(conn, records, self.settings.rollup_dimensions)
                rows = [r.row for r in records]
                self._copy(conn, _SPANS, rows, direct=True)
                events = [e for r in records for e in r.events]
                if events:
                    self._copy(conn, _EVENTS, events, direct=True)
                links = [lk for r in records for lk in r.links]
                if links:
                    self._copy(conn, _LINKS, links, direct=True)
                minutes, hours = aggregate(rows, self.settings.rollup_dimensions)
                self._copy(conn, _ROLLUPS_1M, minutes, direct=True)
                self._copy(conn, _ROLLUPS_1H, hours, direct=True)
                unsampled = _sampling.unsampled_rows(rows, self.settings.rollup_dimensions)
                if unsampled:
                    self._copy(conn, _UNSAMPLED_1H, unsampled, direct=True)
                self._record_repairs(conn, Signal.TRACES, records, result)
        except pg_errors.UniqueViolation:
            return False
        result.inserted = len(records)
        result.earliest_span_us = min(r.row[_START] for r in records)
        return True

    def _insert_spans(self, conn: psycopg.Connection[Any], records: Sequence[_traces.SpanRecord]) -> int:
        _calls.fold_repeated_calls(conn, records, self.settings.rollup_dimensions)
        self._copy(conn, _SPANS, (r.row for r in records))
        events = [e for r in records for e in r.events]
        links = [lk for r in records for lk in r.links]
        row = conn.execute(self._spans_sql).fetchone()
        if events:
            self._copy(conn, _EVENTS, events)
            conn.execute(_EVENTS.insert_sql())
        if links:
            self._copy(conn, _LINKS, links)
            conn.execute(_LINKS.insert_sql())
        return int(row[0]) if row else 0

    def _write_traces_one_by_one(
        self, conn: psycopg.Connection[Any], records: Sequence[_traces.SpanRecord], result: WriteResult
    ) -> WriteResult:
        with conn.transaction():
            for record in records:
                try:
                    with conn.transaction():
                        if self._insert_spans(conn, [record]):
                            result.inserted += 1
                            start = record.row[_START]
                            if result.earliest_span_us is None or start < result.earliest_span_us:
                                result.earliest_span_us = start
                        for table in (_SPANS, _EVENTS, _LINKS):
                            conn.execute(f"TRUNCATE {table.staging}")
                except _DATA_ERRORS as exc:
                    reason = f"{type(exc).__name__}: {exc}".strip()
                    self._quarantine(conn, Signal.TRACES, reason, record, record.span.SerializeToString(), result)
            self._record_repairs(conn, Signal.TRACES, records, result)
        return result

    def _write_generic(
        self,
        conn: psycopg.Connection[Any],
        signal: Signal,
        table: _Table,
        records: Sequence[Any],
        unchanged: _metrics.UnchangedPoints | None = None,
    ) -> WriteResult:
        result = WriteResult(items=len(records))
        records = self._admit(conn, signal, records, _ITEM_TIME, result)
        stored: list[tuple[bytes, bytes]] = []
        if unchanged is not None:
            kept, stored = unchanged.fresh(records)
            result.unchanged = len(records) - len(kept)
            records = kept
        if records:
            self._store_generic(conn, signal, table, records, result)
        if unchanged is not None:
            unchanged.remember(stored)  # only once stored: a failed write must not hide its points later
        return result

    def _store_generic(
        self, conn: psycopg.Connection[Any], signal: Signal, table: _Table, records: Sequence[Any], result: WriteResult
    ) -> None:
        time_index = _ITEM_TIME[0][0]
        tables = PARTITIONED_TABLES[signal]
        self.ensure_partitions(conn, tables, {r.row[time_index] for r in records}, MAX_NEW_PARTITION_RANGES)
        insert = table.insert_sql()
        for attempt in (0, 1):
            try:
                with conn.transaction():
                    self._copy(conn, table, (r.row for r in records))
                    result.inserted = conn.execute(insert).rowcount
                    self._record_repairs(conn, signal, records, result)
                return
            except _DATA_ERRORS as exc:
                if _is_missing_partition(exc) and attempt == 0:
                    self._partitions.clear()
                    self.ensure_partitions(conn, tables, {r.row[time_index] for r in records}, MAX_NEW_PARTITION_RANGES)
                    continue
                _LOGGER.warning(
                    "postgres: batch of %d %s rejected (%s); retrying one by one",
                    len(records),
                    signal.item_name,
                    exc,
                )
                break
        result.inserted = 0
        with conn.transaction():
            for record in records:
                try:
                    with conn.transaction():
                        self._copy(conn, table, [record.row])
                        result.inserted += conn.execute(insert).rowcount
                        conn.execute(f"TRUNCATE {table.staging}")
                except _DATA_ERRORS as exc:
                    reason = f"{type(exc).__name__}: {exc}".strip()
                    self._quarantine(conn, signal, reason, record, record.item(), result)
            self._record_repairs(conn, signal, records, result)

    def _admit(
        self,
        conn: psycopg.Connection[Any],
        signal: Signal,
        records: Sequence[Any],
        times: Sequence[tuple[int, str]],
        result: WriteResult,
    ) -> list[Any]:
        """The records to write: those that became rows and are dated within the signal's time window. The others
        are quarantined now, in their own transaction (redelivery records them once)."""
        failed = [r for r in records if r.failure is not None]
        rows = [r for r in records if r.failure is None] if failed else list(records)
        rows, late = self.settings.window(signal).split(rows, times)
        if failed or late:
            with conn.transaction():
                self._quarantine_failed(conn, signal, failed, result)
                self._quarantine_late(conn, signal, late, result)
        return rows

    def _quarantine_late(
        self, conn: psycopg.Connection[Any], signal: Signal, late: Sequence[Late], result: WriteResult
    ) -> None:
        for refused in late:
            record = refused.record
            item = record.span.SerializeToString() if isinstance(record, _traces.SpanRecord) else record.item()
            when = _EPOCH + timedelta(microseconds=refused.time_us)
            self._quarantine(conn, signal, refused.reason, record, item, result, when)

    def _quarantine_failed(
        self, conn: psycopg.Connection[Any], signal: Signal, failed: Sequence[Any], result: WriteResult
    ) -> None:
        """Items that could not become rows (committed before the batch: redelivery records them once)."""
        for record in failed:
            item = record.span.SerializeToString() if isinstance(record, _traces.SpanRecord) else record.item()
            self._quarantine(conn, signal, record.failure, record, item, result)

    def _quarantine(
        self,
        conn: psycopg.Connection[Any],
        signal: Signal,
        reason: str,
        record: Any,
        item: bytes,
        result: WriteResult,
        item_time: datetime | None = None,
    ) -> None:
        _LOGGER.warning("postgres: quarantined one %s item: %s", signal.value, reason)
        trace_id, span_id = _ids(record)
        conn.execute(
            _QUARANTINE_SQL,
            (signal.value, "quarantined", reason[:2000], _item_key(record), trace_id, span_id, item, item_time),
        )
        result.quarantined += 1
        result.quarantine_reasons.append(reason)
        if self._on_repair is not None:
            self._on_repair(signal, "quarantined")

    def _record_repairs(
        self, conn: psycopg.Connection[Any], signal: Signal, records: Sequence[Any], result: WriteResult
    ) -> None:
        rows = []
        for record in records:
            if record.repairs:
                trace_id, span_id = _ids(record)
                reason = "; ".join(sorted(set(record.repairs)))
                rows.append((signal.value, "repaired", reason, _item_key(record), trace_id, span_id, None, None))
        if not rows:
            return
        with conn.cursor() as cur:
            cur.executemany(_QUARANTINE_SQL, rows)
        result.repaired += len(rows)
        for _ in rows:
            _LOGGER.info("postgres: repaired one %s item", signal.value)
            if self._on_repair is not None:
                self._on_repair(signal, "repaired")


def _item_key(record: Any) -> bytes:
    """The natural key of a record's item: what makes its quarantine row idempotent."""
    row = record.row
    if not row:  # an item that never became a row: its serialized form is its identity
        item = record.span.SerializeToString() if isinstance(record, _traces.SpanRecord) else record.item()
        return hashlib.blake2b(item, digest_size=16).digest()
    if isinstance(record, _traces.SpanRecord):
        return bytes(row[0]) + bytes(row[1]) + _pack_q(row[_START])
    return bytes(row[0]) + _pack_q(row[1])  # metric points and logs: (stream or record hash, time)


def _ids(record: Any) -> tuple[bytes | None, bytes | None]:
    if isinstance(record, _traces.SpanRecord):
        return record.span.trace_id or None, record.span.span_id or None
    return record.trace_id or None, record.span_id or None
