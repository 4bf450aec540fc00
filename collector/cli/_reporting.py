"""What every report command shares: the window, filter and output options, opening the database (unknown
names refused with suggestions), and rendering a result as a table, JSON or CSV to stdout or a file.

Exit codes: 0 (also for an empty window: "no data"), 2 for bad arguments (unknown service, bad time, ...), 1 when
the database cannot be reached.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import typer
from rich.console import Console

from collector.analytics.queries import DEFAULT_LIMIT, TREND_METRICS, Analytics, Thresholds
from collector.analytics.render import FORMATS, render
from collector.analytics.session import UnknownNameError, check_known, connect, resolve_dsn
from collector.analytics.window import FILTER_NAMES, Filters, TimeWindow

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


@dataclass(frozen=True)
class ReportContext:
    """What the common options of a command say: where the database is, the window, the filters and the output."""

    config: Path
    dsn: str | None
    window: TimeWindow
    filters: Filters
    fmt: str
    output: Path | None
    hours: float | None = None
    since: str | None = None
    until: str | None = None

    def window_with(self, default_hours: float, now: datetime) -> TimeWindow:
        """The same --hours/--since/--until read with another default lookback."""
        return _run(lambda: TimeWindow.parse(self.hours, self.since, self.until, now=now, default_hours=default_hours))


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _option(name: str, annotation: Any, option: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


_DATABASE = (_option("config", Path, _config), _option("dsn", str | None, _dsn))
_WINDOW = (
    _option("hours", float | None, _hours),
    _option("since", str | None, _since),
    _option("until", str | None, _until),
)
_FILTER_OPTIONS = {
    name: _option(name, str | None, option)
    for name, option in zip(FILTER_NAMES, (_service, _operation, _tenant, _user, _agent, _model), strict=True)
}


def _output_options(fmt: Any) -> tuple[inspect.Parameter, ...]:
    return _option("fmt", str, fmt), _option("output", Path | None, _output)


_Command = Callable[..., None]


def _with_options(
    options: tuple[inspect.Parameter, ...], context: Callable[[dict[str, Any]], ReportContext]
) -> Callable[[_Command], _Command]:
    """Typer reads a command's options from its signature: put ``options`` where the command's keyword-only
    ``c: ReportContext`` parameter stands (so --help lists them there), and call the command with the context
    ``context`` makes of their values."""

    def decorate(command: _Command) -> _Command:
        own = list(inspect.signature(command, eval_str=True).parameters.values())
        at = [p.name for p in own].index("c")
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[:at]] + [*options, *own[at + 1 :]]

        @functools.wraps(command)
        def run(**values: Any) -> None:
            shared = {p.name: values.pop(p.name) for p in options}
            command(c=context(shared), **values)

        run.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
        return run

    return decorate


def report_options(
    *,
    default_hours: float = 24.0,
    without: tuple[str, ...] = (),
    fmt: Any = _format,
    formats: tuple[str, ...] = FORMATS,
) -> Callable[[_Command], _Command]:
    """The options every report shares: database, window (the last ``default_hours`` unless given), the filters but
    those ``without``, and output (``--format`` one of ``formats``)."""
    filters = tuple(p for name, p in _FILTER_OPTIONS.items() if name not in without)

    def context(v: dict[str, Any]) -> ReportContext:
        _check_format(v["fmt"], formats)
        try:
            window = TimeWindow.parse(v["hours"], v["since"], v["until"], default_hours=default_hours)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        chosen = Filters(**{name: v[name] for name in FILTER_NAMES if name in v})
        return ReportContext(
            v["config"], v["dsn"], window, chosen, v["fmt"], v["output"], v["hours"], v["since"], v["until"]
        )

    return _with_options((*_DATABASE, *_WINDOW, *filters, *_output_options(fmt)), context)


def store_options() -> Callable[[_Command], _Command]:
    """The options of a command over stored state (budgets, alerts, summary): database and output, no window."""

    def context(v: dict[str, Any]) -> ReportContext:
        return _no_window(v["config"], v["dsn"], v["fmt"], v["output"])

    return _with_options((*_DATABASE, *_output_options(_format)), context)


def _check_format(fmt: str, formats: tuple[str, ...]) -> None:
    if fmt not in formats:
        raise _fail(f"--format: expected one of {', '.join(formats)}, got {fmt!r}")


@contextlib.contextmanager
def _analytics(c: ReportContext, thresholds: Thresholds | None = None, exact: bool = False) -> Iterator[Analytics]:
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


def _emit(c: ReportContext, result: Any, title: str, *, empty: bool | None = None) -> None:
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


def _no_window(config: Path, dsn: str | None, fmt: str, output: Path | None) -> ReportContext:
    """For commands over stored state (budgets, alerts, summary): no window or filter options."""
    _check_format(fmt, FORMATS)
    return ReportContext(config, dsn, TimeWindow.parse(None, None, None), Filters(), fmt, output)
