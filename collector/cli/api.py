"""CLI command ``api``: serve the analytics HTTP API (the same app the collector's ``analytics`` extension runs)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import typer

from collector.analytics.api import API_LIMITS, API_PREFIX, AnalyticsAPI
from collector.analytics.config import AnalyticsConfig, config_from_file
from collector.analytics.session import resolve_dsn
from collector.analytics.ui import analytics_app
from collector.cli import app
from collector.confighttp import HTTPServer


@app.command("api")
def api(
    config: Path = typer.Option(
        Path("otel-collector.yaml"),
        "--config",
        "-c",
        help="Collector config (database, and the analytics extension's settings if present).",
    ),
    dsn: str | None = typer.Option(
        None, "--dsn", help="postgresql:// URL instead of --config.", envvar="OTEL_METRICS_DSN"
    ),
    endpoint: str | None = typer.Option(None, "--endpoint", help="host:port (default 127.0.0.1:8890)."),
    token: str | None = typer.Option(
        None, "--token", help="Require this bearer token.", envvar="OTEL_METRICS_API_TOKEN"
    ),
) -> None:
    """Serve the analytics HTTP API under /api/v1 until SIGTERM/SIGINT. Refuses a non-loopback --endpoint without
    a token."""
    try:
        settings = (config_from_file(config) if config.is_file() else None) or AnalyticsConfig()
        if endpoint:
            settings.endpoint = endpoint
        if token is not None:
            settings.token = token
        errors = settings.validate()
        if errors:
            raise ValueError("; ".join(errors))
        resolved = resolve_dsn(config, dsn)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    asyncio.run(_serve(analytics_app(lambda: resolved, settings), settings.endpoint))


async def _serve(api: AnalyticsAPI, endpoint: str) -> None:
    server = HTTPServer(api.app, endpoint, limits=API_LIMITS, name="analytics-api")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    host = endpoint.rpartition(":")[0] or "127.0.0.1"
    typer.echo(f"analytics API on http://{host}:{server.port}{API_PREFIX}/ (openapi.json, health)", err=True)
    typer.echo(f"analytics UI on http://{host}:{server.port}/", err=True)
    try:
        await stop.wait()
    finally:
        await server.shutdown()
        await asyncio.to_thread(api.pool.close)
