"""The analytics API's database connections: a psycopg-pool pool with a cap, an acquire timeout and a check of
each connection before it is lent, opened on first use.

Opening waits for first use because the DSN may be the embedded server, which the caller starts lazily; the
pending migrations (budgets, alerts, caches) are applied once, on a connection of their own, before the pool
exists, so an unreachable database fails that request at once and the next request tries again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool

from .session import APPLICATION_NAME, connect

__all__ = ["ACQUIRE_TIMEOUT", "DEFAULT_POOL_SIZE", "ConnectionPool", "PoolTimeout"]

# At most this many connections, whatever the number of concurrent requests (Starlette's thread pool has 40).
DEFAULT_POOL_SIZE = 4
# A request waits this long for a free connection before it is refused (503, retryable).
ACQUIRE_TIMEOUT = 10.0
PoolTimeout = psycopg_pool.PoolTimeout


def _configure(conn: psycopg.Connection[Any]) -> None:
    # Days, hours and caches are UTC everywhere (date_trunc follows the session's zone), whatever the server's.
    conn.execute("SET TIME ZONE 'UTC'")


class ConnectionPool:
    def __init__(
        self, dsn: Callable[[], str], *, max_size: int = DEFAULT_POOL_SIZE, timeout: float = ACQUIRE_TIMEOUT
    ) -> None:
        self._dsn = dsn
        self.max_size = max_size
        self.timeout = timeout
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _open(self) -> psycopg_pool.ConnectionPool[psycopg.Connection[Any]]:
        with self._lock:
            if self._closed:
                raise psycopg_pool.PoolClosed("the analytics API is shutting down")
            if self._pool is None:
                dsn = self._dsn()
                connect(dsn).close()  # migrations, once; raises OperationalError while the database is away
                self._pool = psycopg_pool.ConnectionPool(
                    dsn,
                    min_size=1,
                    max_size=self.max_size,
                    timeout=self.timeout,
                    kwargs={"autocommit": True, "application_name": APPLICATION_NAME},
                    configure=_configure,
                    check=psycopg_pool.ConnectionPool.check_connection,
                    name="otel-metrics-analytics",
                    open=True,
                )
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A checked connection for the duration of the block (blocking; raises PoolTimeout when none frees up in
        time, psycopg.OperationalError when the database cannot be reached)."""
        with self._open().connection() as conn:
            yield conn

    def stats(self) -> dict[str, int]:
        """The pool's counters (size, idle connections, waiting requests, ...); empty before first use."""
        return dict(self._pool.get_stats()) if self._pool is not None else {}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
