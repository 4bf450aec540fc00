"""What every report command shares: the window, filter and output options, opening the database (unknown
names refused with suggestions), and rendering a result as a table, JSON or CSV to stdout or a file.

Exit codes: 0 (also for an empty window: "no data"), 2 for bad arguments (unknown service, bad time, ...), 1 when
the database cannot be reached.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import typer
from rich.console import Console

from collector.analytics.queries import DEFAULT_LIMIT, TREND_METRICS, Analytics, Thresholds
from collector.analytics.render import FORMATS, render
from collector.analytics.session import UnknownNameError, check_known, connect, resolve_dsn
from collector.analytics.window import Filters, TimeWindow

_T = TypeVar("_T")
DEFAULT_CONFIG = Path("otel-collector.yaml")

_config = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="Collector config whose postgres exporter is read.")
_dsn = typer.Option(None, "--dsn", help="postgresql:// URL (instead of --config).", envvar="OTEL_METRICS_DSN")
_hours = typer.Option(None, "--hours", help="Window: the last N hours (default 24).")
_since = typer.Option(None, "--since", help="Window start: ISO 8601 or relative (12h, 7d, 2w).")
_until = typer.Option(None, "--until", help="Window end: ISO 8601 or relative (default now).")
_service = typer.Option(None, "--service", help="Only this service.name.")
_operation = typer.Option(None, "--operation", help="Only this operation (span name).")
_tenant = typer.Option(None, "--tenant", help="Only this tenant.id.")
_user = typer.Option(None, "--user", help="Only this user.id (reads raw spans).")
_agent = typer.Option(None, "--agent", help="Only this gen_ai.agent.name.")
_model = typer.Option(None, "--model", help="Only this model.")
_format = typer.Option("table", "--format", "-f", help="table, json or csv.")
_output = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout.")
_limit = typer.Option(DEFAULT_LIMIT, "--limit", help="At most this many rows.")
_offset = typer.Option(0, "--offset", help="Skip this many rows (pagination).")
_exact = typer.Option(False, "--exact", help="Read raw spans even for windows over a day (exact, slower).")
_metrics = typer.Option(list(TREND_METRICS), "--metric", help="Repeatable: " + ", ".join(TREND_METRICS))


@dataclass
class _Common:
    config: Path
    dsn: str | None
    window: TimeWindow
    filters: Filters
    fmt: str
    output: Path | None


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _common(
    config: Path,
    dsn: str | None,
    hours: float | None,
    since: str | None,
    until: str | None,
    fmt: str,
    output: Path | None,
    *,
    service: str | None = None,
    operation: str | None = None,
    tenant: str | None = None,
    user: str | None = None,
    agent: str | None = None,
    model: str | None = None,
    default_hours: float = 24.0,
) -> _Common:
    if fmt not in FORMATS:
        raise _fail(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    try:
        window = TimeWindow.parse(hours, since, until, default_hours=default_hours)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    return _Common(config, dsn, window, Filters(service, operation, tenant, user, agent, model), fmt, output)


@contextlib.contextmanager
def _analytics(c: _Common, thresholds: Thresholds | None = None, exact: bool = False) -> Iterator[Analytics]:
    try:
        dsn = resolve_dsn(c.config, c.dsn)
        conn = connect(dsn)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise _fail(f"cannot connect to the database: {exc}", 1) from None
    with conn:
        analytics = Analytics(conn, thresholds, exact=exact)
        try:
            check_known("service", c.filters.service, analytics.services())
            if c.filters.operation is not None:
                check_known("operation", c.filters.operation, analytics.operations(c.filters.service))
        except UnknownNameError as exc:
            raise _fail(str(exc)) from None
        yield analytics


def _run(fn: Callable[[], _T]) -> _T:
    try:
        return fn()
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _emit(c: _Common, result: Any, title: str, *, empty: bool | None = None) -> None:
    is_empty = (not result) if empty is None else empty
    if is_empty and c.fmt == "table":
        typer.echo(f"no data for {title} between {c.window.start:%Y-%m-%d %H:%M} and {c.window.end:%Y-%m-%d %H:%M} UTC")
        return
    if c.output is not None:
        with open(c.output, "w", encoding="utf-8", newline="") as handle:
            text = render(result, c.fmt, title=title, console=Console(file=handle, width=220))
            if text is not None:
                handle.write(text if text.endswith("\n") or not text else text + "\n")
        typer.echo(f"wrote {c.output}", err=True)
        return
    text = render(result, c.fmt, title=title)
    if text is not None:
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    if is_empty:
        typer.echo("no data", err=True)


def _no_window(config: Path, dsn: str | None, fmt: str, output: Path | None) -> _Common:
    """For commands over stored state (budgets, alerts, summary): no window or filter options."""
    return _common(config, dsn, None, None, None, fmt, output)
