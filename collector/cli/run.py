"""CLI commands: ``collector`` (run the collector) and ``validate`` (check a config, starting nothing)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from pathlib import Path

import typer

from collector.cli import app
from collector.config.loader import load_config
from collector.confmap import ConfigError
from collector.exporters.postgres.database import detach_all
from collector.service import DEFAULT_SHUTDOWN_TIMEOUT, Service, StartError
from processors.memory_limiter import limit_malloc_arenas
from processors.redaction import redact_text

DEFAULT_CONFIG = Path("otel-collector.yaml")
# After the shutdown bound, this much longer for the event loop and its worker threads to wind down before the
# process exits regardless (a thread stuck in a blocking call must not keep a SIGTERMed collector alive).
FORCE_EXIT_GRACE = 5.0
# An embedded PostgreSQL gets at least this long to stop cleanly after the shutdown bound is spent.
MIN_DATABASE_STOP = 1.0

_CONFIG_OPTION = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="Collector config (upstream YAML schema).")


def _arm_watchdog(shutdown_timeout: float) -> None:
    limit = shutdown_timeout + FORCE_EXIT_GRACE

    def force_exit() -> None:
        logging.getLogger("otel_metrics.collector").error("still running %.1fs after the stop request; exiting", limit)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(limit, force_exit)
    timer.daemon = True
    timer.start()


async def _run(service: Service, shutdown_timeout: float) -> None:
    stop_requested: list[float] = []

    def on_stopping() -> None:
        stop_requested.append(time.monotonic())
        _arm_watchdog(shutdown_timeout)

    await service.run(shutdown_timeout=shutdown_timeout, on_stopping=on_stopping)
    if not stop_requested:
        return
    # A component abandoned at its shutdown bound (an exporter waiting on a hung PostgreSQL) can leave an embedded
    # server attached, and threads blocked on it that interpreter exit would join forever: stop the servers with
    # what is left of the bound, then exit without joining. Queues were persisted by the shutdown; what was not
    # acknowledged is redelivered at the next start.
    left = stop_requested[0] + shutdown_timeout - time.monotonic()
    await asyncio.to_thread(detach_all, max(left, MIN_DATABASE_STOP))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _print_errors(exc: ConfigError) -> None:
    typer.echo(f"{exc.source}: invalid config ({len(exc.errors)} error(s)):", err=True)
    for line in exc.errors:
        # An error quotes the value it rejects: a DSN, an endpoint or a header may hold a password.
        typer.echo(f"  - {redact_text(line)}", err=True)


@app.command("collector")
def collector(
    config: Path = _CONFIG_OPTION,
    shutdown_timeout: float = typer.Option(
        DEFAULT_SHUTDOWN_TIMEOUT, "--shutdown-timeout", help="Seconds allowed for draining on SIGTERM/SIGINT."
    ),
    log_level: str = typer.Option("", "--log-level", help="Overrides service.telemetry.logs.level."),
) -> None:
    """Run the OTLP collector until SIGTERM/SIGINT, then drain and stop within --shutdown-timeout."""
    try:
        loaded = load_config(config)
    except ConfigError as exc:
        _print_errors(exc)
        raise typer.Exit(1) from None
    level = (log_level or loaded.telemetry.logs.level).upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for warning in loaded.warnings:
        logging.getLogger("otel_metrics.collector").warning("%s", warning)
    limit_malloc_arenas()  # before any thread allocates
    try:
        asyncio.run(_run(Service(loaded), shutdown_timeout))
    except StartError as exc:
        typer.echo(f"collector failed to start: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        raise typer.Exit(130) from None


@app.command("validate")
def validate(config: Path = _CONFIG_OPTION) -> None:
    """Check a collector config (keys, types, references, each component's rules); exit 1 on any error."""
    try:
        loaded = load_config(config)
    except ConfigError as exc:
        _print_errors(exc)
        raise typer.Exit(1) from None
    for warning in loaded.warnings:
        typer.echo(f"warning: {redact_text(warning)}", err=True)
    pipelines = ", ".join(str(p) for p in loaded.pipelines)
    typer.echo(f"OK: {config} ({len(loaded.pipelines)} pipeline(s): {pipelines})")
