"""Fixtures for tests in more than one directory."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from collector.exporters.postgres import schema
from processors import _sdk_internals
from tests.support.trace_recorder import TraceRecorder, recording_trace_service


@pytest.fixture
def trace_recorder() -> Iterator[tuple[TraceRecorder, int]]:
    """A real OTLP/gRPC trace service on a free loopback port that keeps what it is sent: (recorder, port)."""
    with recording_trace_service() as served:
        yield served


@pytest.fixture(params=["sdk internals", "public API"])
def sdk_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test twice: with the fast paths that use the SDK's private internals (when the installed SDK is one
    they were tested on), and with those switched off, as on any other SDK version."""
    if request.param == "public API":
        monkeypatch.setattr(_sdk_internals, "use_sdk_internals", False)
    return str(request.param)


# ---------------------------------------------------------------------------------------------- PostgreSQL

TEST_DSN_ENV = "OTEL_METRICS_TEST_PG_DSN"


@contextlib.contextmanager
def private_tmp_dir() -> Iterator[Path]:
    """A temp dir outside pytest's basetemp: as root, pgserver runs PostgreSQL as its own user, which must be able
    to traverse the parents (pytest's are 0700), and concurrent pytest runs prune old basetemps, which would pull
    a running PostgreSQL's data directory from under it."""
    path = Path(tempfile.mkdtemp(prefix="otel-metrics-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """One real PostgreSQL for the whole suite: a pgserver in a private temp dir, or ``OTEL_METRICS_TEST_PG_DSN``."""
    dsn = os.environ.get(TEST_DSN_ENV)
    if dsn:
        yield dsn
        return
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver

    with private_tmp_dir() as tmp:
        server = pgserver.get_server(tmp / "data", cleanup_mode="stop")
        yield server.get_uri()
        server.cleanup()


class Schemas:
    """Migrated schemas on one server, each a DSN whose ``search_path`` is that schema, so tests are independent
    and can run concurrently with other people's tests against one server."""

    def __init__(self, server_dsn: str) -> None:
        self.server_dsn = server_dsn
        self._names: dict[str, str] = {}

    def dsn_for(self, name: str) -> str:
        """The server's DSN with ``search_path`` set to ``name``; a postgresql:// URL stays one (configs need
        URLs)."""
        if self.server_dsn.startswith(("postgresql://", "postgres://")):
            sep = "&" if "?" in self.server_dsn else "?"
            return f"{self.server_dsn}{sep}options={quote(f'-c search_path={name}')}"
        return make_conninfo(self.server_dsn, options=f"-c search_path={name}")

    def create(self, *, migrate: bool = True) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.server_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        dsn = self.dsn_for(name)
        self._names[dsn] = name
        if migrate:
            with psycopg.connect(dsn, autocommit=True) as conn:
                schema.migrate(conn)
        return dsn

    def drop(self, dsn: str) -> None:
        with psycopg.connect(self.server_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {self._names.pop(dsn)} CASCADE")


@pytest.fixture(scope="session")
def pg_schemas(pg_server_dsn: str) -> Schemas:
    return Schemas(pg_server_dsn)


@pytest.fixture
def pg_dsn(pg_schemas: Schemas) -> Iterator[str]:
    """A DSN whose search_path is a fresh, migrated schema dropped after the test."""
    dsn = pg_schemas.create()
    yield dsn
    pg_schemas.drop(dsn)


@pytest.fixture
def new_schema(pg_schemas: Schemas) -> Iterator[Callable[[], str]]:
    """Makes fresh migrated schemas (each a DSN) on demand; all are dropped after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(pg_schemas.create())
        return made[-1]

    yield make
    for dsn in made:
        pg_schemas.drop(dsn)


@pytest.fixture
def pg_conn(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def sink_tmp_path() -> Iterator[Path]:
    """A temp dir PostgreSQL's own user can reach (see ``private_tmp_dir``)."""
    with private_tmp_dir() as path:
        yield path
