"""Opening the sink's database for analytics: from ``--dsn``, or the postgres exporter of a collector config."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import psycopg

from collector.exporters.postgres import schema
from collector.exporters.postgres.database import dsn_from_config

__all__ = ["APPLICATION_NAME", "UnknownNameError", "check_known", "connect", "resolve_dsn"]

APPLICATION_NAME = "otel-metrics-analytics"  # how analytics sessions show in pg_stat_activity


class UnknownNameError(ValueError):
    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.4)
        listed = close or known[:10]
        hint = ("; did you mean: " if close else "; known: ") + (", ".join(listed) if listed else "(none yet)")
        super().__init__(f"unknown {kind} {name!r}{hint}")
        self.kind = kind
        self.name = name
        self.suggestions = listed


def check_known(kind: str, name: str | None, known: list[str]) -> None:
    if name is not None and name not in known:
        raise UnknownNameError(kind, name, known)


def resolve_dsn(config: Path | None, dsn: str | None) -> str:
    """``dsn`` if given, else the database of the postgres exporter in ``config`` (starting or attaching to the
    embedded server if that is what it uses)."""
    if dsn:
        return dsn
    if config is None or not Path(config).is_file():
        raise FileNotFoundError(f"no collector config at {config}; give --config FILE or --dsn postgresql://...")
    return dsn_from_config(config)


def connect(dsn: str, *, migrate: bool = True) -> psycopg.Connection[Any]:
    """An autocommit connection; applies pending migrations (the budgets and alerts tables) unless told not to."""
    conn = psycopg.connect(dsn, autocommit=True, application_name=APPLICATION_NAME)
    # Days, hours and caches are UTC everywhere (date_trunc follows the session's zone), whatever the server's.
    conn.execute("SET TIME ZONE 'UTC'")
    if migrate:
        schema.migrate(conn)
    return conn
