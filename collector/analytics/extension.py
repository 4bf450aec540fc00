"""The ``analytics`` extension: serves the analytics HTTP API and evaluates the alert rules on a schedule,
inside the collector.

    extensions:
      analytics:
        endpoint: 127.0.0.1:8890
        token: ${env:ANALYTICS_TOKEN}
        alerts: {interval: 60s, rules: [...], webhook: {url: https://hooks.example/alerts}}
        thresholds: {slow: 5s, very_slow: 30s}

Each round also brings the daily rollup cache of the last 35 days up to date, so month-long reports do not pay
for building it. Evaluation runs in a worker thread (psycopg is synchronous) so the collector's event loop never
blocks on it; webhook delivery runs as its own task and only logs failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from collector.component import Extension, ExtensionFactory, Host
from collector.confighttp import HTTPServer
from collector.exporters.postgres.config import PostgresExporterConfig
from collector.exporters.postgres.database import open_database
from processors.pipeline import CreateSettings

from . import compose, daily
from .api import API_LIMITS
from .config import TYPE, AnalyticsConfig, config_from_file
from .queries import Analytics
from .session import connect
from .ui import analytics_app

__all__ = ["TYPE", "AnalyticsExtension", "config_from_file", "factories"]

# Whole days the extension keeps in the daily rollup cache (month-long reports and a few days of slack).
CACHE_DAYS = 35
_LOGGER = logging.getLogger("otel_metrics.analytics")


def _dsn_for(config: AnalyticsConfig) -> str:
    return open_database(PostgresExporterConfig(dsn=config.dsn, data_dir=config.data_dir)).dsn


class AnalyticsExtension(Extension):
    def __init__(self, settings: CreateSettings, config: AnalyticsConfig) -> None:
        self.settings = settings
        self.config = config
        self._host: Host | None = None
        self._dsn: str | None = None
        self.api = analytics_app(self.dsn, config, component_status=self._status)
        self._server = HTTPServer(self.api.app, config.endpoint, limits=API_LIMITS, name="analytics")
        self._loop_task: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[Any]] = set()
        self.evaluations = 0  # completed alert rounds (observable by tests and health)

    def dsn(self) -> str:
        if self._dsn is None:
            self._dsn = _dsn_for(self.config)
        return self._dsn

    @property
    def port(self) -> int:
        return self._server.port

    def _status(self) -> dict[str, Any]:
        return dict(self._host.component_status()) if self._host is not None else {}

    async def start(self, host: Host) -> None:
        self._host = host
        await asyncio.to_thread(self.dsn)  # attach to (or start) the database before serving
        await self._server.start()
        if self.config.alerts.enabled and compose.alert_rules(self.config):
            self._loop_task = asyncio.create_task(self._alert_loop(), name="analytics-alerts")

    def warm_daily_cache(self) -> int:
        """Rebuild stale cached days of the last CACHE_DAYS days, and the running day's ended hours, so reports
        never pay for it; returns days built."""
        now = datetime.now(UTC)
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        with connect(self.dsn()) as conn:
            built = daily.refresh(conn, today - timedelta(days=CACHE_DAYS), today)
            daily.refresh_hours(conn, today, now.replace(minute=0, second=0, microsecond=0))
            return built

    def evaluate_once(self) -> compose.AlertRound:
        """One alert round: evaluate every rule and record the result (blocking; delivery is the caller's)."""
        with connect(self.dsn()) as conn:
            return compose.record_alert_round(
                Analytics(conn, compose.thresholds_of(self.config)), compose.alert_rules(self.config)
            )

    async def _alert_loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.warm_daily_cache)
            except Exception:  # the cache is an optimisation; reports rebuild stale days themselves
                _LOGGER.exception("analytics: daily rollup cache refresh failed")
            try:
                round_ = await asyncio.to_thread(self.evaluate_once)
                # Its own task: a slow webhook must not delay the next round.
                task = asyncio.create_task(compose.deliver_alert_round(round_, self.config.alerts.webhook))
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)
            except Exception:  # a failed round (database down) is logged; the next one retries
                _LOGGER.exception("analytics: alert evaluation failed")
            self.evaluations += 1
            await asyncio.sleep(self.config.alerts.interval)

    async def shutdown(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self._deliveries:
            await asyncio.wait(self._deliveries, timeout=self.config.alerts.webhook.timeout)
        await self._server.shutdown()
        await asyncio.to_thread(self.api.pool.close)


factories = (ExtensionFactory(type=TYPE, config_type=AnalyticsConfig, create=AnalyticsExtension),)
