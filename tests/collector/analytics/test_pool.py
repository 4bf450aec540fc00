"""The API's connection pool (psycopg-pool): a cap, an acquire timeout that answers 503, and a check that replaces a
connection the server dropped before lending it."""

from __future__ import annotations

import psycopg
import pytest

from collector.analytics.api import AnalyticsAPI
from collector.analytics.pool import ConnectionPool, PoolTimeout
from tests.collector.analytics.analytics_data import Loaded
from tests.collector.analytics.served import serve


def test_the_pool_caps_connections_and_times_out(dataset: Loaded) -> None:
    pool = ConnectionPool(lambda: dataset.dsn, max_size=2, timeout=0.2)
    try:
        with pool.connection() as first, pool.connection() as second:
            assert first is not second
            with pytest.raises(PoolTimeout), pool.connection():
                pass
            assert pool.stats()["pool_size"] == 2
        with pool.connection() as again:  # returned connections are lent again
            assert again in (first, second)
    finally:
        pool.close()


def test_a_request_without_a_free_connection_is_a_retryable_503(dataset: Loaded) -> None:
    api = AnalyticsAPI(lambda: dataset.dsn)
    api.pool = ConnectionPool(lambda: dataset.dsn, max_size=1, timeout=0.2)
    with serve(api) as client:
        assert client.get("/services").status_code == 200
        with api.pool.connection():  # the only connection is busy
            r = client.get("/services")
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert client.get("/services").status_code == 200


def test_a_connection_the_server_dropped_is_replaced_before_use(dataset: Loaded) -> None:
    api = AnalyticsAPI(lambda: dataset.dsn)
    api.pool = ConnectionPool(lambda: dataset.dsn, max_size=1)
    with serve(api) as client:
        with api.pool.connection() as conn:
            pid = conn.info.backend_pid
        with psycopg.connect(dataset.dsn, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
        r = client.get("/services")
        assert r.status_code == 200 and r.json()["items"]
        with api.pool.connection() as conn:
            assert conn.info.backend_pid != pid
