"""Versioned schema migrations for the PostgreSQL sink (and analytics, 0010+), applied in version order.

Every ``migrations/NNNN_name.sql`` file is one migration, applied once in its own transaction and recorded in
``schema_migrations``. Several sink processes may start at once: a session advisory lock serialises them, and
each re-reads what is applied after taking it. Migrations only add; nothing here drops data.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

import psycopg

__all__ = ["AppliedMigration", "Migration", "MigrationStatus", "available", "migrate", "status"]

_LOGGER = logging.getLogger("otel_metrics.collector.postgres")
# Arbitrary but fixed: the key every otel-metrics process locks while migrating.
MIGRATION_LOCK_KEY = 0x6F74656C_6D657472 & 0x7FFFFFFFFFFFFFFF
_FILE_NAME = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    checksum   text NOT NULL
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    applied_at: datetime
    checksum: str


@dataclass(frozen=True)
class MigrationStatus:
    applied: list[AppliedMigration]
    pending: list[Migration]
    # Applied migrations whose file changed since (version, name): a warning, never re-applied.
    changed: list[int]


def available(directory: Path | None = None) -> list[Migration]:
    """Every migration file in version order; two files with one version are an error."""
    found: dict[int, Migration] = {}
    if directory is None:
        entries = [
            (p.name, p.read_text(encoding="utf-8"))
            for p in resources.files("collector.exporters.postgres").joinpath("migrations").iterdir()
            if p.name.endswith(".sql")
        ]
    else:
        entries = [(p.name, p.read_text(encoding="utf-8")) for p in Path(directory).glob("*.sql")]
    for file_name, sql in entries:
        match = _FILE_NAME.match(file_name)
        if match is None:
            raise ValueError(f"migration file {file_name!r}: expected NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(
                f"migration version {version:04d} appears twice: {found[version].name!r} and {match.group(2)!r}"
            )
        found[version] = Migration(version, match.group(2), sql)
    return [found[v] for v in sorted(found)]


def _applied(conn: psycopg.Connection) -> list[AppliedMigration]:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    rows = conn.execute("SELECT version, name, applied_at, checksum FROM schema_migrations ORDER BY version")
    return [AppliedMigration(*row) for row in rows.fetchall()]


def status(conn: psycopg.Connection, directory: Path | None = None) -> MigrationStatus:
    """What is applied, what is pending, which applied files changed since."""
    applied = _applied(conn)
    if not conn.autocommit:
        conn.commit()
    done = {a.version: a for a in applied}
    migrations = available(directory)
    pending = [m for m in migrations if m.version not in done]
    changed = [m.version for m in migrations if m.version in done and done[m.version].checksum != m.checksum]
    return MigrationStatus(applied, pending, changed)


def migrate(conn: psycopg.Connection, directory: Path | None = None) -> list[Migration]:
    """Apply every pending migration in order, each in its own transaction; return those applied now.

    Safe to call from several processes at once (advisory lock). Leaves ``conn`` idle (no open transaction).
    """
    was_autocommit = conn.autocommit
    conn.autocommit = True
    done_now: list[Migration] = []
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(_CREATE_TABLE)
            current = status(conn, directory)
            for version in current.changed:
                _LOGGER.warning("migration %04d changed since it was applied; it is not re-applied", version)
            for migration in current.pending:
                with conn.transaction():
                    conn.execute(migration.sql.encode())  # no parameters: may hold several statements
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                _LOGGER.info("applied migration %04d_%s", migration.version, migration.name)
                done_now.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    finally:
        conn.autocommit = was_autocommit
    return done_now
