"""The real upstream programs for the peer tests: the upstream Collector and Jaeger v2, built once per pinned
version by ``scripts/upstream`` into a cache outside the work tree (tests skip with the reason where Go is absent),
and a real PostgreSQL for the sink processes (``OTEL_METRICS_TEST_PG_DSN`` or a session-wide pgserver)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from collector.exporters.postgres import schema

# --import-mode=importlib puts no test folder on sys.path; the helper modules are imported by name.
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "sink"))
from peer_procs import upstream_binary
from sink_pg import schema_dsn


@pytest.fixture(scope="session")
def otelcol() -> Path:
    return upstream_binary("otelcol")


@pytest.fixture(scope="session")
def jaeger() -> Path:
    return upstream_binary("jaeger")


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Not under pytest's basetemp: other people's concurrent runs prune it, and as root pgserver's PostgreSQL
    runs as its own user, which must traverse the parents (pytest's are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="otel-peers-"))
    path.chmod(0o755)
    yield path
    if not os.environ.get("PEERS_KEEP"):  # PEERS_KEEP=1 keeps the logs and configs for a look
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    dsn = os.environ.get("OTEL_METRICS_TEST_PG_DSN")
    if dsn:
        yield dsn
        return
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver

    parent = Path(tempfile.mkdtemp(prefix="otel-peers-pg-"))
    server = pgserver.get_server(parent / "data", cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_server_dsn: str) -> Iterator[str]:
    """A DSN whose search_path is a fresh, migrated schema dropped after the test."""
    name = f"p_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    dsn = schema_dsn(pg_server_dsn, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        schema.migrate(conn)
    yield dsn
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")
