"""The real upstream programs for the peer tests: the upstream Collector and Jaeger v2, built once per pinned
version by ``scripts/upstream`` into a cache outside the work tree (tests skip with the reason where Go is absent);
and PostgreSQL (``pg_dsn``) is the suite's own, from tests/conftest.py."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.peer_procs import upstream_binary


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
