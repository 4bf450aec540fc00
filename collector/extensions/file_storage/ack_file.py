"""The acknowledgement file of a segment queue: written in place into space reserved when the queue opens.

Why in place: the queue must record deliveries when the disk is full too, or a restart re-sends what was
delivered. Replacing the file (temp + rename) needs a new block at every write; here the file is allocated once
(two slots of ``SLOT_BYTES``) and each write overwrites the older slot. A write torn by a crash damages only that
slot: the reader takes the valid slot with the higher generation, so at worst the last update is lost, which
means redelivery (at-least-once), never loss.

Slot: ``OMACK2\\n <generation u64> <low-water mark u64> <n u32> <n acked seqs u64> <crc32 u32>`` (crc over
everything after the magic). The previous format (``OMACK1``, one record replaced by rename) is still read.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from pathlib import Path

from .private import FILE_MODE

__all__ = ["SLOT_BYTES", "AckFile", "AckState"]

SLOT_BYTES = 32 * 1024
_MAGIC = b"OMACK2\n"
_HEAD = struct.Struct("<QQI")  # generation, low-water mark, number of acked seqs above it
_CRC = struct.Struct("<I")
# The largest number of acked seqs above the low-water mark a slot holds; beyond it the highest are left out
# (they are redelivered after a crash, as unacknowledged records are).
MAX_ACKED = (SLOT_BYTES - len(_MAGIC) - _HEAD.size - _CRC.size) // 8
_V1_MAGIC = b"OMACK1\n"
_V1_HEAD = struct.Struct("<QI")

AckState = tuple[int, frozenset[int]]  # low-water mark, acknowledged seqs above it


def _parse_slot(data: bytes) -> tuple[int, AckState] | None:
    if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + _HEAD.size + _CRC.size:
        return None
    generation, lwm, n = _HEAD.unpack_from(data, len(_MAGIC))
    end = len(_MAGIC) + _HEAD.size + 8 * n
    if n > MAX_ACKED or end + _CRC.size > len(data):
        return None
    (crc,) = _CRC.unpack_from(data, end)
    if zlib.crc32(data[len(_MAGIC) : end]) != crc:
        return None
    acked = struct.unpack_from(f"<{n}Q", data, len(_MAGIC) + _HEAD.size)
    return generation, (lwm, frozenset(acked))


def _parse_v1(data: bytes) -> AckState:
    body, crc = data[len(_V1_MAGIC) : -4], struct.unpack("<I", data[-4:])[0]
    if zlib.crc32(body) != crc:
        raise ValueError("bad crc")
    lwm, n = _V1_HEAD.unpack_from(body, 0)
    return lwm, frozenset(struct.unpack_from(f"<{n}Q", body, _V1_HEAD.size))


class AckFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._generation = 0

    def read(self) -> AckState | None:
        """The last state written, or None when there is none (or none readable: then everything is redelivered).
        Raises ValueError for a file that is neither format."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if data.startswith(_V1_MAGIC):
            return _parse_v1(data)
        slots = [_parse_slot(data[i * SLOT_BYTES : (i + 1) * SLOT_BYTES]) for i in range(2)]
        valid = [slot for slot in slots if slot is not None]
        if not valid:
            raise ValueError("no valid slot")
        self._generation, state = max(valid, key=lambda slot: slot[0])
        return state

    def open(self, state: AckState) -> None:
        """Write ``state`` into the file's reserved space: the file as it is when it has its full size already (a
        restart on a full disk), else a new one replacing it atomically."""
        with contextlib.suppress(OSError):
            if self.path.stat().st_size == 2 * SLOT_BYTES and self.path.read_bytes().startswith(_MAGIC):
                self._fd = os.open(self.path, os.O_RDWR)
                self.write(state, sync=True)
                return
        self.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.posix_fallocate(fd, 0, 2 * SLOT_BYTES)
            self._generation += 1
            os.pwrite(fd, self._slot(state), (self._generation % 2) * SLOT_BYTES)
            os.fsync(fd)
            os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._fd = fd

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def write(self, state: AckState, *, sync: bool) -> None:
        """Overwrite the older slot with ``state`` (no allocation: works on a full disk). Raises OSError."""
        assert self._fd is not None
        self._generation += 1
        os.pwrite(self._fd, self._slot(state), (self._generation % 2) * SLOT_BYTES)
        if sync:
            os.fdatasync(self._fd)

    def _slot(self, state: AckState) -> bytes:
        lwm, acked = state
        kept = sorted(acked)[:MAX_ACKED]
        body = _HEAD.pack(self._generation, lwm, len(kept)) + struct.pack(f"<{len(kept)}Q", *kept)
        return _MAGIC + body + _CRC.pack(zlib.crc32(body))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
