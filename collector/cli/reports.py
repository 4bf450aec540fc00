"""CLI reports over the sink: report, stats, costs, budgets, trends, outliers, percentiles, insights, alerts,
summary, export. Rich tables for people; ``--format json|csv`` for machines; ``--output FILE`` to export.

Exit codes: 0 (also for an empty window: "no data"), 2 for bad arguments (unknown service, bad time, ...).
"""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import typer
from psycopg import sql
from rich.console import Console

from collector.analytics import advice
from collector.analytics.alerts import AlertStore, deliver_webhook, evaluate
from collector.analytics.budgets import (
    DEFAULT_CRITICAL_RATIO,
    DEFAULT_WARNING_RATIO,
    Budget,
    BudgetStore,
    agent_budget_map,
)
from collector.analytics.config import default_rules
from collector.analytics.queries import (
    COST_KEYS,
    DEFAULT_LIMIT,
    DEFAULT_SLOW_MS,
    DEFAULT_VERY_SLOW_MS,
    DEFAULT_Z_THRESHOLD,
    TREND_METRICS,
    Analytics,
    Thresholds,
)
from collector.analytics.render import FORMATS, render
from collector.analytics.session import UnknownNameError, check_known, connect, resolve_dsn
from collector.analytics.summary import service_health
from collector.analytics.summary import summary as build_summary
from collector.analytics.window import Filters, TimeWindow
from collector.cli import app

_T = TypeVar("_T")
DEFAULT_CONFIG = Path("otel-collector.yaml")
EXPORT_LIMIT = 1_000_000

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


@app.command("report")
def report(
    by: str = typer.Option("operation", "--by", help="operation, service, agent, role, user or hour (of day)."),
    slow_ms: float = typer.Option(DEFAULT_SLOW_MS, "--slow-ms", help="Slow threshold (ms)."),
    very_slow_ms: float = typer.Option(DEFAULT_VERY_SLOW_MS, "--very-slow-ms", help="Very slow threshold (ms)."),
    config: Path = _config,
    dsn: str | None = _dsn,
    hours: float | None = _hours,
    since: str | None = _since,
    until: str | None = _until,
    service: str | None = _service,
    operation: str | None = _operation,
    tenant: str | None = _tenant,
    user: str | None = _user,
    agent: str | None = _agent,
    model: str | None = _model,
    fmt: str = _format,
    output: Path | None = _output,
    limit: int = _limit,
    offset: int = _offset,
    exact: bool = _exact,
) -> None:
    """Performance: calls, avg, p50/p95/p99, max, success/error rate, slow and very slow counts."""
    c = _common(
        config,
        dsn,
        hours,
        since,
        until,
        fmt,
        output,
        service=service,
        operation=operation,
        tenant=tenant,
        user=user,
        agent=agent,
        model=model,
    )
    with _analytics(c, Thresholds(slow_ms, very_slow_ms), exact) as a:
        result: Any
        if by in ("operation", "service"):
            result = _run(lambda: a.performance(c.window, c.filters, group_by=by, limit=limit, offset=offset))
        elif by in ("agent", "role"):
            budgets = agent_budget_map(BudgetStore(a.conn).status())
            result = _run(lambda: a.agents(c.window, c.filters, by=by, budgets=budgets, limit=limit, offset=offset))
        elif by == "user":
            result = _run(lambda: a.users(c.window, c.filters, limit=limit, offset=offset))
            if result and c.fmt == "table":
                typer.echo(f"active users: {a.active_users(c.window, c.filters)}")
        elif by == "hour":
            result = a.hourly_pattern(c.window, c.filters)
            _emit(c, result, "calls per hour of day (UTC)", empty=not any(p.count for p in result))
            return
        else:
            raise _fail(f"--by: expected operation, service, agent, role, user or hour, got {by!r}")
        _emit(c, result, f"performance by {by}")


@app.command("stats")
def stats_command(
    granularity: str = typer.Option("hour", "--granularity", "-g", help="hour, day, week or month."),
    config: Path = _config,
    dsn: str | None = _dsn,
    hours: float | None = _hours,
    since: str | None = _since,
    until: str | None = _until,
    service: str | None = _service,
    operation: str | None = _operation,
    tenant: str | None = _tenant,
    user: str | None = _user,
    agent: str | None = _agent,
    model: str | None = _model,
    fmt: str = _format,
    output: Path | None = _output,
    exact: bool = _exact,
) -> None:
    """Time series: operations, successes, failures, success rate, avg and p95 duration, tokens, cost, quality."""
    c = _common(
        config,
        dsn,
        hours,
        since,
        until,
        fmt,
        output,
        service=service,
        operation=operation,
        tenant=tenant,
        user=user,
        agent=agent,
        model=model,
    )
    with _analytics(c, exact=exact) as a:
        _emit(c, _run(lambda: a.timeseries(c.window, c.filters, granularity)), f"time series per {granularity}")


@app.command("costs")
def costs(
    by: str = typer.Option("model", "--by", help=", ".join(COST_KEYS) + "."),
    correlation_id: str | None = typer.Option(None, "--correlation-id", help="Whole cost of one request."),
    projection: bool = typer.Option(False, "--projection", help="Month-to-date, daily burn, month-end projection."),
    config: Path = _config,
    dsn: str | None = _dsn,
    hours: float | None = _hours,
    since: str | None = _since,
    until: str | None = _until,
    service: str | None = _service,
    operation: str | None = _operation,
    tenant: str | None = _tenant,
    user: str | None = _user,
    agent: str | None = _agent,
    model: str | None = _model,
    fmt: str = _format,
    output: Path | None = _output,
    limit: int = _limit,
    offset: int = _offset,
) -> None:
    """Cost by model, provider, tenant, user, agent, operation, service or correlation id; cost per success."""
    c = _common(
        config,
        dsn,
        hours,
        since,
        until,
        fmt,
        output,
        service=service,
        operation=operation,
        tenant=tenant,
        user=user,
        agent=agent,
        model=model,
    )
    with _analytics(c) as a:
        if correlation_id is not None:
            found = a.correlation_cost(correlation_id)
            _emit(c, found if found is not None else [], f"cost of correlation id {correlation_id}")
            return
        if projection:
            _emit(c, a.cost_projection(c.filters), "cost projection", empty=False)
            return
        _emit(c, _run(lambda: a.costs(c.window, c.filters, by=by, limit=limit, offset=offset)), f"cost by {by}")


budgets_app = typer.Typer(
    help="Budgets per agent, tenant or model and period (day, week, month).", no_args_is_help=True
)
app.add_typer(budgets_app, name="budgets")


def _budget_common(config: Path, dsn: str | None, fmt: str, output: Path | None) -> _Common:
    return _common(config, dsn, None, None, None, fmt, output)


@budgets_app.command("list")
def budgets_list(
    config: Path = _config, dsn: str | None = _dsn, fmt: str = _format, output: Path | None = _output
) -> None:
    """Every budget with its spend this period, utilization and ok/warning/critical."""
    c = _budget_common(config, dsn, fmt, output)
    with _analytics(c) as a:
        _emit(c, BudgetStore(a.conn).status(), "budgets")


@budgets_app.command("set")
def budgets_set(
    scope: str = typer.Argument(..., help="agent, tenant or model."),
    name: str = typer.Argument(..., help="The agent, tenant or model name."),
    amount_usd: float = typer.Argument(..., help="Budget in USD per period."),
    period: str = typer.Option("month", "--period", help="day, week or month."),
    warning_ratio: float = typer.Option(DEFAULT_WARNING_RATIO, "--warning", help="Warning at this utilization."),
    critical_ratio: float = typer.Option(DEFAULT_CRITICAL_RATIO, "--critical", help="Critical at this utilization."),
    config: Path = _config,
    dsn: str | None = _dsn,
) -> None:
    """Create or replace a budget."""
    c = _budget_common(config, dsn, "table", None)
    budget = Budget(scope, name, period, amount_usd, warning_ratio, critical_ratio)
    errors = budget.validate()
    if errors:
        raise _fail("; ".join(errors))
    with _analytics(c) as a:
        BudgetStore(a.conn).set(budget)
    typer.echo(f"budget {scope}/{name}/{period} = ${amount_usd:.2f}")


@budgets_app.command("delete")
def budgets_delete(
    scope: str = typer.Argument(...),
    name: str = typer.Argument(...),
    period: str = typer.Option("month", "--period"),
    config: Path = _config,
    dsn: str | None = _dsn,
) -> None:
    """Delete a budget (exit 1 if there is none)."""
    c = _budget_common(config, dsn, "table", None)
    with _analytics(c) as a:
        if not BudgetStore(a.conn).delete(scope, name, period):
            raise _fail(f"no budget {scope}/{name}/{period}", 1)
    typer.echo(f"deleted budget {scope}/{name}/{period}")


@app.command("trends")
def trends(
    granularity: str = typer.Option("day", "--granularity", "-g", help="hour, day, week or month."),
    metric: list[str] = _metrics,
    config: Path = _config,
    dsn: str | None = _dsn,
    hours: float | None = _hours,
    since: str | None = _since,
    until: str | None = _until,
    service: str | None = _service,
    operation: str | None = _operation,
    tenant: str | None = _tenant,
    user: str | None = _user,
    agent: str | None = _agent,
    model: str | None = _model,
    fmt: str = _format,
    output: Path | None = _output,
) -> None:
    """Least-squares slope, r², p-value and verdict per metric (default lookback 7 days)."""
    c = _common(
        config,
        dsn,
        hours,
        since,
        until,
        fmt,
        output,
        service=service,
        operation=operation,
        tenant=tenant,
        user=user,
        agent=agent,
        model=model,
        default_hours=24.0 * 7,
    )
    with _analytics(c) as a:
        result = _run(lambda: a.trends(c.window, c.filters, granularity, metric))
        _emit(c, result, f"trends per {granularity}", empty=all(t.points == 0 for t in result))


@app.command("outliers")
def outliers(
    metric: str = typer.Option("duration", "--metric", help="duration or cost."),
    threshold: float = typer.Option(DEFAULT_Z_THRESHOLD, "--threshold", "-z", help="|z-score| at least this."),
    config: Path = _config,
    dsn: str | None = _dsn,
    hours: float | None = _hours,
    since: str | None = _since,
    until: str | None = _until,
    service: str | None = _service,
    operation: str | None = _operation,
    tenant: str | None = _tenant,
    user: str | None = _user,
    agent: str | None = _agent,
    model: str | None = _model,
    fmt: str = _format,
    output: Path | None = _output,
    limit: int = _limit,
) -> None:
    """Spans far from their operation's mean (z-score), with trace id and correlation id."""
    c = _common(
        config,
        dsn,
        hours,
        since,
        until,
        fmt,
        output,
        service=service,
        operation=operation,
        tenant=tenant,
        user=user,
        agent=agent,
        model=model,
    )
    with _analytics(c) as a:
        result = _run(lambda: a.outliers(c.window, c.filters, metric=metric, threshold=threshold, limit=limit))
        _emit(c, result, f"{metric} outliers (|z| >= {threshold:g})")


@app.command("percentiles")
def percentiles(
    field: str = typer.Option("duration", "--field", help="duration, cost, tokens, quality or attribute:<name>."),
    config: Path = _config,
    dsn: str | None = _dsn,
    hours: float | None = _hours,
    since: str | None = _since,
    until: str | None = _until,
    service: str | None = _service,
    operation: str | None = _operation,
    tenant: str | None = _tenant,
    user: str | None = _user,
    agent: str | None = _agent,
    model: str | None = _model,
    fmt: str = _format,
    output: Path | None = _output,
    exact: bool = _exact,
) -> None:
    """p50/p75/p90/p95/p99, mean, median, std, min, max and count."""
    c = _common(
        config,
        dsn,
        hours,
        since,
        until,
        fmt,
        output,
        service=service,
        operation=operation,
        tenant=tenant,
        user=user,
        agent=agent,
        model=model,
    )
    with _analytics(c, exact=exact) as a:
        result = _run(lambda: a.percentiles(c.window, c.filters, field))
        _emit(c, result, f"percentiles of {field}", empty=result.count == 0)


@app.command("insights")
def insights(
    minutes_saved: float | None = typer.Option(None, "--minutes-saved", help="Baseline minutes saved per task."),
    hourly_rate: float | None = typer.Option(None, "--hourly-rate", help="USD per hour of the saved time."),
    config: Path = _config,
    dsn: str | None = _dsn,
    hours: float | None = _hours,
    since: str | None = _since,
    until: str | None = _until,
    service: str | None = _service,
    operation: str | None = _operation,
    tenant: str | None = _tenant,
    agent: str | None = _agent,
    model: str | None = _model,
    fmt: str = _format,
    output: Path | None = _output,
) -> None:
    """Fastest agent per operation, most cost-efficient, highest quality, peak hours, degrading operations;
    recommendations; business value with --minutes-saved and --hourly-rate (default lookback 7 days)."""
    c = _common(
        config,
        dsn,
        hours,
        since,
        until,
        fmt,
        output,
        service=service,
        operation=operation,
        tenant=tenant,
        agent=agent,
        model=model,
        default_hours=24.0 * 7,
    )
    if (minutes_saved is None) != (hourly_rate is None):
        raise _fail("--minutes-saved and --hourly-rate go together")
    with _analytics(c) as a:
        result = _insights(a, c.window, c.filters, datetime.now(UTC))
        if minutes_saved is not None and hourly_rate is not None:
            perf = a.performance(c.window, c.filters, group_by="service", limit=10_000)
            tasks = sum(p.calls - p.errors for p in perf)
            result["business_value"] = _run(
                lambda: advice.business_value(tasks, a.total_cost(c.window, c.filters), minutes_saved, hourly_rate)
            )
        if c.fmt == "table" and c.output is None:
            if not result["insights"] and not result["recommendations"]:
                typer.echo("no data")
                return
            render(result["insights"], title="insights")
            render(result["recommendations"], title="recommendations")
            if "business_value" in result:
                render(result["business_value"], title="business value")
            return
        if c.fmt == "csv":
            _emit(c, result["insights"], "insights")
            return
        _emit(c, result, "insights", empty=False)


def _insights(a: Analytics, window: TimeWindow, filters: Filters, now: datetime) -> dict[str, Any]:
    op_series = a.operation_series(window, filters, "day")
    from collector.analytics.queries import trend_of, trend_points

    op_trends = {}
    for key, series in op_series.items():
        xs, ys = trend_points(series, window.start, "day", "avg_ms")
        op_trends[key] = trend_of("avg_ms", xs, ys)
    budgets = BudgetStore(a.conn).status(now)
    agents = a.agents(window, filters, budgets=agent_budget_map(budgets))
    return {
        "insights": advice.insights(a.agent_operations(window, filters), a.hourly_pattern(window, filters), op_trends),
        "recommendations": advice.recommendations(agents, budgets, now),
    }


alerts_app = typer.Typer(help="Alerts: list, ack, resolve, evaluate.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("list")
def alerts_list(
    status: str | None = typer.Option(None, "--status", help="active, acknowledged, resolved or open."),
    config: Path = _config,
    dsn: str | None = _dsn,
    fmt: str = _format,
    output: Path | None = _output,
    limit: int = _limit,
    offset: int = _offset,
) -> None:
    """Stored alerts, newest first."""
    c = _budget_common(config, dsn, fmt, output)
    with _analytics(c) as a:
        _emit(c, _run(lambda: AlertStore(a.conn).list(status, limit=limit, offset=offset)), "alerts")


@alerts_app.command("ack")
def alerts_ack(
    alert_id: int = typer.Argument(...),
    by: str | None = typer.Option(None, "--by", help="Who acknowledges."),
    config: Path = _config,
    dsn: str | None = _dsn,
) -> None:
    """Acknowledge an active alert (exit 1 if it is not active)."""
    with _analytics(_budget_common(config, dsn, "table", None)) as a:
        if AlertStore(a.conn).acknowledge(alert_id, by) is None:
            raise _fail(f"no active alert with id {alert_id}", 1)
    typer.echo(f"alert {alert_id} acknowledged")


@alerts_app.command("resolve")
def alerts_resolve(alert_id: int = typer.Argument(...), config: Path = _config, dsn: str | None = _dsn) -> None:
    """Resolve an open alert (exit 1 if it is not open)."""
    with _analytics(_budget_common(config, dsn, "table", None)) as a:
        if AlertStore(a.conn).resolve(alert_id) is None:
            raise _fail(f"no open alert with id {alert_id}", 1)
    typer.echo(f"alert {alert_id} resolved")


@alerts_app.command("evaluate")
def alerts_evaluate(
    config: Path = _config, dsn: str | None = _dsn, fmt: str = _format, output: Path | None = _output
) -> None:
    """Evaluate the alert rules once (the config's analytics extension rules, else the defaults) and store the
    result; the collector's analytics extension does this on its schedule."""
    import asyncio

    c = _budget_common(config, dsn, fmt, output)
    analytics_config = _extension_config(config)
    rules = analytics_config.alerts.rules if analytics_config else default_rules()
    with _analytics(c) as a:
        firings = evaluate(a, rules)
        opened, resolved = AlertStore(a.conn).apply(firings, [r.name for r in rules])
    if analytics_config and analytics_config.alerts.webhook.url:
        asyncio.run(deliver_webhook(analytics_config.alerts.webhook, opened, resolved))
    typer.echo(f"{len(firings)} firing, {len(opened)} opened, {len(resolved)} resolved", err=True)
    _emit(c, opened, "new alerts", empty=not opened)


def _extension_config(config: Path) -> Any:
    """The ``analytics`` extension's config in the collector config file, if there is one."""
    if not Path(config).is_file():
        return None
    from collector.analytics.extension import config_from_file

    try:
        return config_from_file(config)
    except ValueError as exc:
        raise _fail(str(exc)) from None


@app.command("summary")
def summary_command(
    config: Path = _config, dsn: str | None = _dsn, fmt: str = _format, output: Path | None = _output
) -> None:
    """Last 24 h, last 30 days, open alerts, pending recommendations, overall and per-service status."""
    c = _budget_common(config, dsn, fmt, output)
    with _analytics(c) as a:
        result = build_summary(a)
        services = service_health(a)
        if c.fmt == "table" and c.output is None:
            render(result, title=f"summary: {result.status}")
            render(services, title="services")
            return
        _emit(c, {"summary": result, "services": services} if c.fmt == "json" else [result], "summary", empty=False)


_EXPORT_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "start_time",
    "end_time",
    "duration_ms",
    "service_name",
    "operation",
    "status_code",
    "correlation_id",
    "tenant_id",
    "user_id",
    "session_id",
    "agent_name",
    "agent_role",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "quality_score",
    "error_type",
    "http_route",
    "http_status_code",
)


@app.command("export")
def export(
    config: Path = _config,
    dsn: str | None = _dsn,
    hours: float | None = _hours,
    since: str | None = _since,
    until: str | None = _until,
    service: str | None = _service,
    operation: str | None = _operation,
    tenant: str | None = _tenant,
    user: str | None = _user,
    agent: str | None = _agent,
    model: str | None = _model,
    fmt: str = typer.Option("csv", "--format", "-f", help="csv or json (lines)."),
    output: Path | None = _output,
    limit: int = typer.Option(EXPORT_LIMIT, "--limit"),
) -> None:
    """Raw spans of the window (hot columns) as CSV or JSON lines, streamed."""
    if fmt not in ("csv", "json"):
        raise _fail(f"--format: expected csv or json, got {fmt!r}")
    c = _common(
        config,
        dsn,
        hours,
        since,
        until,
        fmt,
        output,
        service=service,
        operation=operation,
        tenant=tenant,
        user=user,
        agent=agent,
        model=model,
    )
    from collector.analytics._sql import source_for

    with _analytics(c) as a:
        src = source_for(c.window, c.filters, allow_rollup=False)
        query = sql.SQL("SELECT {cols} FROM spans WHERE {where} ORDER BY start_time LIMIT %s").format(
            cols=sql.SQL(", ").join(sql.Identifier(col) for col in _EXPORT_COLUMNS), where=src.where
        )
        count = 0
        with contextlib.ExitStack() as stack:
            handle = stack.enter_context(open(c.output, "w", encoding="utf-8", newline="")) if c.output else sys.stdout
            writer = csv.writer(handle, lineterminator="\n") if fmt == "csv" else None
            if writer:
                writer.writerow(_EXPORT_COLUMNS)
            # A server-side cursor streams rows instead of loading the whole window into memory.
            with a.conn.transaction(), a.conn.cursor(name="otel_metrics_export") as cur:
                cur.execute(query, [*src.params, limit])
                for row in cur:
                    values = [v.hex() if isinstance(v, bytes) else v for v in row]
                    if writer:
                        writer.writerow(
                            ["" if v is None else (v.isoformat() if isinstance(v, datetime) else v) for v in values]
                        )
                    else:
                        handle.write(json.dumps(dict(zip(_EXPORT_COLUMNS, values, strict=True)), default=str) + "\n")
                    count += 1
        if count == 0:
            typer.echo("no data", err=True)
        elif c.output:
            typer.echo(f"wrote {count} spans to {c.output}", err=True)
