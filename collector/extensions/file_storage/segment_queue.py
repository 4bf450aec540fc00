"""A durable FIFO on disk: append-only segment files plus a small acknowledgement file.

Why this shape (and not a key-value store as upstream's bbolt client): a sending queue only ever appends at the
tail and acknowledges near the head, so sequential writes with one fsync per *group* of appends (group commit) are
the cheapest way to make "acknowledged means durable" hold at 100k spans/s.

Layout of one queue directory::

    00000000000000000001.seg   records 1..k      (name = sequence number of its first record)
    000000000000000000k1.seg   records k+1..     (the segment being appended to)
    ack                        low-water mark + acknowledged sequence numbers above it (ack_file.py)
    lock                       flock'ed by the owning process

A record is ``<length:u32><crc32:u32><seq:u64><payload>`` with the crc over seq+payload. After a crash the tail of
the last segment may be torn: scanning stops at the first record whose header, length or crc does not check out
and the file is truncated there. Losing the ack file's latest write only causes redelivery (at-least-once), never
loss, so it is fsync'ed on open and close only.

A full disk: an append that cannot be written fails (the caller refuses its request, retryably) and is cut off
the segment; the next appends try again, so writing resumes by itself once space returns. Deliveries are recorded
in space the ack file reserved when the queue opened, so they are recorded on a full disk too.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .ack_file import AckFile
from .private import FILE_MODE, make_private_dir, restrict_file

__all__ = ["DEFAULT_SEGMENT_BYTES", "QueueStoreError", "SegmentQueue", "StoredRecord"]

_log = logging.getLogger("otel_metrics.collector.file_storage")

# Segments are deleted whole once every record in them is acknowledged; 16 MiB keeps the number of files small
# while freeing space promptly.
DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024
_HEADER = struct.Struct("<IIQ")  # length of payload, crc32(seq + payload), seq
_SEQ = struct.Struct("<Q")
# A length above this in a record header can only be corruption (a torn or garbage header).
_MAX_RECORD = 1 << 30
_SEGMENT_SUFFIX = ".seg"


class QueueStoreError(Exception):
    """The queue directory cannot be used (locked by another process, not writable)."""


@dataclass(frozen=True)
class StoredRecord:
    """Where one unacknowledged record lives on disk."""

    seq: int
    segment: int  # first seq of the segment file holding it
    offset: int  # offset of the payload in that file
    length: int


def _segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{_SEGMENT_SUFFIX}"


def _scan(path: Path) -> Iterator[tuple[int, int, int, int]]:
    """(seq, payload offset, payload length, end offset) of every intact record, up to the first bad one."""
    with path.open("rb") as f:
        data = f.read()
    pos = 0
    while pos + _HEADER.size <= len(data):
        length, crc, seq = _HEADER.unpack_from(data, pos)
        start = pos + _HEADER.size
        end = start + length
        if length > _MAX_RECORD or end > len(data):
            return
        if zlib.crc32(data[start:end], zlib.crc32(_SEQ.pack(seq))) != crc:
            return
        yield seq, start, length, end
        pos = end


class SegmentQueue:
    """One durable FIFO (one exporter's sending queue). Not shared between processes: the directory is locked.

    ``append`` is a coroutine; concurrent appends are written and fsync'ed together by one background flush
    (group
    commit) running in a worker thread, so the event loop never waits on the disk.
    """

    def __init__(self, directory: Path, *, fsync: bool = True, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.directory = Path(directory)
        self._fsync = fsync
        self._segment_bytes = segment_bytes
        self._lock_fd: int | None = None
        self._segments: list[int] = []  # first seqs, ascending; the last one is being appended to
        self._seg_lock = threading.Lock()  # guards _segments and the current file between writer thread and loop
        self._current: int | None = None  # fd of the segment being appended to
        self._current_size = 0
        self._next_seq = 1
        self._lwm = 1  # every seq below this is acknowledged
        self._acked: set[int] = set()  # acknowledged seqs >= _lwm
        self._pending: list[tuple[int, bytes, asyncio.Future[StoredRecord]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._recovered: list[StoredRecord] = []
        self._closed = False
        self._ack_file = AckFile(self.directory / "ack")
        self._ack_unsaved = False  # deliveries recorded in memory only (the ack file could not be written)
        self.torn_bytes_truncated = 0

    # ---- opening and recovery ------------------------------------------------------------------------------
    def open(self) -> list[StoredRecord]:
        """Lock the directory, repair a torn tail, and return every unacknowledged record in order."""
        try:
            make_private_dir(self.directory)
            for existing in self.directory.iterdir():  # written by a version that left them 0644
                restrict_file(existing)
            self._lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise QueueStoreError(f"cannot use queue directory {self.directory}: {exc}") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise QueueStoreError(f"queue directory {self.directory} is in use by another process") from exc
        self._read_ack_file()
        firsts = sorted(
            int(p.name[: -len(_SEGMENT_SUFFIX)])
            for p in self.directory.iterdir()
            if p.name.endswith(_SEGMENT_SUFFIX) and p.name[: -len(_SEGMENT_SUFFIX)].isdigit()
        )
        records: list[StoredRecord] = []
        last_seq = self._lwm - 1
        for i, first in enumerate(firsts):
            path = self.directory / _segment_name(first)
            good_end = 0
            for seq, start, length, end in _scan(path):
                good_end = end
                last_seq = max(last_seq, seq)
                if seq >= self._lwm and seq not in self._acked:
                    records.append(StoredRecord(seq, first, start, length))
            size = path.stat().st_size
            if good_end < size:
                # A torn tail (crash mid-write) or corruption: nothing past it was ever acknowledged to a
                # caller
                # if it is the last segment; for an earlier segment it is data loss we can only report.
                self.torn_bytes_truncated += size - good_end
                level = logging.WARNING if i == len(firsts) - 1 else logging.ERROR
                _log.log(level, "file_storage: truncating %d bad bytes at the end of %s", size - good_end, path)
                with path.open("r+b") as f:
                    f.truncate(good_end)
                    os.fsync(f.fileno())
            self._segments.append(first)
        self._next_seq = max(last_seq + 1, self._lwm)
        self._acked = {s for s in self._acked if s < self._next_seq}
        self._recovered = records
        # New appends always start a fresh segment: the recovered ones are never written again.
        self._delete_acked_segments()
        self._persist_acks(sync=True)
        return list(records)

    def _read_ack_file(self) -> None:
        try:
            state = self._ack_file.read()
        except (OSError, ValueError, struct.error) as exc:
            # Redeliver everything on disk rather than guess: at-least-once.
            _log.warning(
                "file_storage: ignoring unreadable ack file %s (%s); redelivering all records", self._ack_file.path, exc
            )
            return
        if state is not None:
            self._lwm, acked = state
            self._acked = set(acked)

    # ---- appending (group commit) --------------------------------------------------------------------------
    async def append(self, payload: bytes) -> StoredRecord:
        """Return once ``payload`` is written (and fsync'ed, unless fsync is off) as the next record."""
        if self._closed:
            raise QueueStoreError(f"queue {self.directory} is closed")
        seq = self._next_seq
        self._next_seq += 1
        fut: asyncio.Future[StoredRecord] = asyncio.get_running_loop().create_future()
        self._pending.append((seq, payload, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        return await asyncio.shield(fut)

    async def _flush_loop(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                stored = await asyncio.to_thread(self._write_batch, [(s, p) for s, p, _ in batch])
            except BaseException as exc:
                # Refuse first: every caller gets its answer whatever happens next.
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(QueueStoreError(f"writing to {self.directory} failed: {exc}"))
                # Those seqs are on no segment (the partial write was cut off): done, so the low-water mark can
                # pass them. ack() never raises, so this loop survives a full disk and serves the next appends.
                for seq, _, _ in batch:
                    self.ack(seq)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, _, fut), rec in zip(batch, stored, strict=True):
                if not fut.done():
                    fut.set_result(rec)

    def _write_batch(self, batch: list[tuple[int, bytes]]) -> list[StoredRecord]:
        out: list[StoredRecord] = []
        with self._seg_lock:
            if self._current is None or self._current_size >= self._segment_bytes:
                self._rotate(batch[0][0])
            assert self._current is not None
            seg = self._segments[-1]
            chunks: list[bytes] = []
            pos = self._current_size
            for seq, payload in batch:
                seq_bytes = _SEQ.pack(seq)
                header = _HEADER.pack(len(payload), zlib.crc32(payload, zlib.crc32(seq_bytes)), seq)
                chunks.append(header)
                chunks.append(payload)
                out.append(StoredRecord(seq, seg, pos + _HEADER.size, len(payload)))
                pos += _HEADER.size + len(payload)
            fd = self._current
        data = b"".join(chunks)
        view = memoryview(data)
        try:
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self._fsync:
                os.fdatasync(fd)
        except BaseException:
            # A partial write (ENOSPC, EIO) must not sit in front of later records, or recovery would stop at it
            # and lose them: cut it off, and start the next batch in a fresh segment whatever happens.
            with self._seg_lock:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._current_size)
                with contextlib.suppress(OSError):
                    os.close(fd)
                self._current = None
            raise
        with self._seg_lock:
            self._current_size = pos
        return out

    def _rotate(self, first_seq: int) -> None:
        if self._current is not None:
            os.close(self._current)
            self._current = None  # a failed open below must not leave a closed fd to write to
        path = self.directory / _segment_name(first_seq)
        self._current = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        self._current_size = os.fstat(self._current).st_size
        self._segments.append(first_seq)
        if self._fsync:
            # The new file's directory entry must survive a crash too, or its fsync'ed records are
            # unreachable.
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    # ---- reading and acknowledging -------------------------------------------------------------------------
    def read(self, record: StoredRecord) -> bytes:
        with (self.directory / _segment_name(record.segment)).open("rb") as f:
            f.seek(record.offset)
            return f.read(record.length)

    def ack(self, seq: int) -> None:
        """Mark ``seq`` delivered (or dropped); persist that, delete fully acknowledged segments. Never raises: an
        acknowledgement that cannot be written now (full disk) is kept in memory and written with the next."""
        if seq < self._lwm or self._closed:
            return
        self._acked.add(seq)
        advanced = False
        while self._lwm in self._acked:
            self._acked.discard(self._lwm)
            self._lwm += 1
            advanced = True
        self._persist_acks(sync=False)
        if advanced:
            self._delete_acked_segments()  # delivered is delivered: its space is freed whether or not persisted

    def _persist_acks(self, *, sync: bool) -> None:
        state = (self._lwm, frozenset(self._acked))
        try:
            if self._ack_file.is_open:
                self._ack_file.write(state, sync=sync)
            else:
                self._ack_file.open(state)  # reserves the file's space once; full disk: retried at the next ack
        except OSError as exc:
            if not self._ack_unsaved:
                _log.error(
                    "file_storage: cannot record deliveries in %s (%s); kept in memory and retried", self.directory, exc
                )
            self._ack_unsaved = True
            return
        if self._ack_unsaved:
            _log.info("file_storage: deliveries recorded in %s again", self.directory)
            self._ack_unsaved = False

    def _delete_acked_segments(self) -> None:
        with self._seg_lock:
            # Segment i holds seqs [first_i, first_{i+1}); it can go once first_{i+1} <= lwm. The segment
            # being
            # appended to is never deleted here.
            while len(self._segments) >= 2 and self._segments[1] <= self._lwm:
                first = self._segments.pop(0)
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / _segment_name(first)).unlink()
            if self._current is None and len(self._segments) == 1 and self._next_seq <= self._lwm:
                first = self._segments.pop(0)
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / _segment_name(first)).unlink()

    @property
    def unacked(self) -> int:
        return self._next_seq - self._lwm - len(self._acked)

    async def close(self) -> None:
        """Finish pending writes, persist acknowledgements durably, release the directory."""
        if self._closed:
            return
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        self._closed = True
        with self._seg_lock:
            if self._current is not None:
                os.close(self._current)
                self._current = None
        self._persist_acks(sync=True)
        self._ack_file.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
