"""Binary COPY dumpers for the sink's staged columns: timestamps as int µs, JSON text as jsonb, cost units as numeric.

Rows carry these as plain ints and strings (no datetime or Decimal objects on the hot path); marker types tell
psycopg which dumper a staging column uses (``PostgresWriter`` registers them on its connection).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types.string import BytesBinaryDumper

__all__ = [
    "CostUnits",
    "CostUnitsDumper",
    "EpochMicros",
    "JsonText",
    "JsonbTextDumper",
    "TimestamptzMicrosDumper",
    "copy_rows",
    "register_dumpers",
]

_PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 in µs since the Unix epoch
_pack_q = struct.Struct("!q").pack
_pack_numeric6 = struct.Struct("!hhHh6H").pack


class EpochMicros:
    """Marker type: timestamps are staged as int µs since the Unix epoch (no datetime objects on the hot
    path)."""


class TimestamptzMicrosDumper(Dumper):
    format = Format.BINARY
    oid = psycopg.postgres.types["timestamptz"].oid

    def dump(self, obj: Any) -> bytes:
        return _pack_q(obj - _PG_EPOCH_US)


class JsonbTextDumper(Dumper):
    """jsonb from JSON text already produced (binary jsonb = version byte 1 + the text)."""

    format = Format.BINARY
    oid = psycopg.postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + str(obj).encode()


class CostUnitsDumper(Dumper):
    """numeric from an int count of 1e-10 USD: the only numeric columns COPYed (``cost_usd`` of spans and rollups)
    carry ``span_columns.cost_units``. Six base-10000 digits, weight 2 and scale 10 cover every value below 1e12 USD;
    PostgreSQL strips the leading and trailing zero digits."""

    format = Format.BINARY
    oid = psycopg.postgres.types["numeric"].oid

    def dump(self, obj: Any) -> bytes:
        m = obj * 100 if obj >= 0 else -obj * 100  # 12 fractional decimal digits: three base-10000 digits
        if m >= 10**24:
            return self._large(obj)
        return _pack_numeric6(
            6, 2, 0 if obj >= 0 else 0x4000, 10,
            m // 10**20, m // 10**16 % 10000, m // 10**12 % 10000, m // 10**8 % 10000, m // 10**4 % 10000, m % 10000,
        )  # fmt: skip

    @staticmethod
    def _large(obj: int) -> bytes:
        m = abs(obj) * 100
        digits: list[int] = []
        while m:
            m, digit = divmod(m, 10000)
            digits.append(digit)
        digits.reverse()
        head = struct.pack("!hhHh", len(digits), len(digits) - 4, 0 if obj >= 0 else 0x4000, 10)
        return head + struct.pack(f"!{len(digits)}H", *digits)


class JsonText:
    """Marker type: JSON text staged as jsonb."""

    pass


class CostUnits:
    """Marker type: numeric columns staged as int counts of 1e-10 USD."""


def register_dumpers(conn: psycopg.Connection[Any]) -> None:
    """The dumpers staged rows need, on ``conn``."""
    conn.adapters.register_dumper(EpochMicros, TimestamptzMicrosDumper)
    conn.adapters.register_dumper(JsonText, JsonbTextDumper)
    conn.adapters.register_dumper(CostUnits, CostUnitsDumper)
    # COPY picks dumpers by column type; for bytea the last one registered is psycopg.dbapi20's, written in Python for
    # its ``Binary`` wrapper: put back the (C, when available) bytes dumper, 3 calls per span.
    conn.adapters.register_dumper(bytes, BytesBinaryDumper)


def copy_rows(
    conn: psycopg.Connection[Any], table: str, columns: Sequence[tuple[str, str]], rows: Iterable[tuple[Any, ...]]
) -> None:
    """Binary COPY of staged rows (``columns``: (name, staging type)) into ``table``, on a connection
    ``register_dumpers`` prepared."""
    names = ", ".join(c for c, _ in columns)
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([t for _, t in columns])
        for row in rows:
            copy.write_row(row)
