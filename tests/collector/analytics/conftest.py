"""The analytics tests' data; PostgreSQL (``pg_server_dsn``, ``pg_dsn``, ``new_schema``) is tests/conftest.py's.

``dataset`` is one migrated schema loaded once per session through the sink's writer (read-only for tests);
``pg_dsn`` is a fresh migrated schema per test for tests that write (budgets, alerts).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.collector.analytics import analytics_data
from tests.collector.analytics.analytics_data import Loaded


@pytest.fixture(scope="session")
def dataset(pg_schemas: Any) -> Iterator[Loaded]:
    dsn = pg_schemas.create()
    data = analytics_data.generate()
    analytics_data.load(dsn, data)
    yield Loaded(dsn, data)
    pg_schemas.drop(dsn)


@pytest.fixture
def conn(dataset: Loaded) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dataset.dsn, autocommit=True) as c:
        yield c
