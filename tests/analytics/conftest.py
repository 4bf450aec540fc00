"""Real PostgreSQL for the analytics tests: a session-wide pgserver in a temp dir, or ``OTEL_METRICS_TEST_PG_DSN``.

``dataset`` is one migrated schema loaded once per session through the sink's writer (read-only for tests);
``pg_dsn`` is a fresh migrated schema per test for tests that write (budgets, alerts).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from collector.exporters.postgres import schema

TEST_DSN_ENV = "OTEL_METRICS_TEST_PG_DSN"
sys.path.insert(0, str(Path(__file__).parent))

import analytics_data  # noqa: E402


@pytest.fixture(scope="session")
def pg_server_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    dsn = os.environ.get(TEST_DSN_ENV)
    if dsn:
        yield dsn
        return
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver

    # Not under pytest's basetemp: as root, pgserver runs PostgreSQL as its own user, which must be able to
    # traverse the parent directories (pytest's are 0700).
    parent = Path(tempfile.mkdtemp(prefix="otel-analytics-pg-"))
    server = pgserver.get_server(parent / "data", cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(parent, ignore_errors=True)


def _new_schema(server_dsn: str) -> tuple[str, str]:
    name = f"a_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    dsn = make_conninfo(server_dsn, options=f"-c search_path={name}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        schema.migrate(conn)
    return name, dsn


def _drop_schema(server_dsn: str, name: str) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def pg_dsn(pg_server_dsn: str) -> Iterator[str]:
    name, dsn = _new_schema(pg_server_dsn)
    yield dsn
    _drop_schema(pg_server_dsn, name)


class Loaded:
    def __init__(self, dsn: str, data: analytics_data.Dataset) -> None:
        self.dsn = dsn
        self.data = data


@pytest.fixture(scope="session")
def dataset(pg_server_dsn: str) -> Iterator[Loaded]:
    name, dsn = _new_schema(pg_server_dsn)
    data = analytics_data.generate()
    analytics_data.load(dsn, data)
    yield Loaded(dsn, data)
    _drop_schema(pg_server_dsn, name)


@pytest.fixture
def conn(dataset: Loaded) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dataset.dsn, autocommit=True) as c:
        yield c


@pytest.fixture
def new_schema(pg_server_dsn: str) -> Iterator[Callable[[], str]]:
    """Makes fresh migrated schemas (each a DSN) on demand; all are dropped after the test."""
    made: list[str] = []

    def make() -> str:
        name, dsn = _new_schema(pg_server_dsn)
        made.append(name)
        return dsn

    yield make
    for name in made:
        _drop_schema(pg_server_dsn, name)
