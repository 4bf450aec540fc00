"""The real ``analytics`` extension for the UI tests: a fresh migrated schema loaded with ``ui_data``, served on a
free loopback port from its own thread (Playwright's sync API runs outside any asyncio loop). A module of its own:
``from conftest import`` would find whichever test folder's conftest was imported first."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import psycopg

from collector.analytics.config import AlertsConfig, AnalyticsConfig
from collector.analytics.extension import AnalyticsExtension, factories
from collector.component import ComponentID
from collector.exporters.exporterhelper.testing import StaticHost
from collector.exporters.postgres import schema
from processors.pipeline import CreateSettings, Signal
from tests.collector.analytics.ui import ui_data

TOKEN = "ui-t0ken"


def _schema_dsn(server_dsn: str, name: str) -> str:
    sep = "&" if "?" in server_dsn else "?"
    return f"{server_dsn}{sep}options={quote(f'-c search_path={name}')}"


@contextlib.contextmanager
def _schema(server_dsn: str) -> Iterator[str]:
    name = f"ui_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    dsn = _schema_dsn(server_dsn, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        schema.migrate(conn)
    try:
        yield dsn
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


class Served:
    """The extension running in a thread with its own event loop."""

    def __init__(self, config: AnalyticsConfig) -> None:
        ext = factories[0].create(CreateSettings(ComponentID.parse("analytics"), Signal.TRACES), config)
        assert isinstance(ext, AnalyticsExtension)
        self.extension = ext
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="ui-test-loop", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(ext.start(StaticHost()), self.loop).result(timeout=60)
        self.url = f"http://127.0.0.1:{ext.port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.extension.shutdown(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()


@contextlib.contextmanager
def serving(server_dsn: str, load: Callable[[str], object] = ui_data.load) -> Iterator[tuple[Served, str]]:
    """A fresh schema loaded with ``load`` (ui_data by default), and the extension serving it (with TOKEN)."""
    with _schema(server_dsn) as dsn:
        load(dsn)
        with serving_schema(dsn) as server:
            yield server, dsn


@contextlib.contextmanager
def serving_schema(dsn: str) -> Iterator[Served]:
    """The extension serving the schema ``dsn`` as it is (with TOKEN)."""
    # No alert rounds: the tests' alerts are the only ones, whatever the rules would find.
    config = AnalyticsConfig(endpoint="127.0.0.1:0", token=TOKEN, dsn=dsn, alerts=AlertsConfig(enabled=False))
    server = Served(config)
    try:
        yield server
    finally:
        server.stop()


def wait_for(predicate: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
