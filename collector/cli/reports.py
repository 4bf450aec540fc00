"""CLI reports over the sink: report, stats, costs, trends, outliers, percentiles, insights, summary, export.
Rich tables for people; ``--format json|csv`` for machines; ``--output FILE`` to export. Budgets and alerts
commands live in ``collector.cli.budgets`` and ``collector.cli.alerts``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from datetime import UTC, datetime
from typing import Any

import typer

from collector.analytics import compose
from collector.analytics.budgets import BudgetStore, agent_budget_map
from collector.analytics.queries import (
    COST_KEYS,
    DEFAULT_SLOW_MS,
    DEFAULT_VERY_SLOW_MS,
    DEFAULT_Z_THRESHOLD,
    EXPORT_COLUMNS,
    Analytics,
    Thresholds,
)
from collector.analytics.render import render
from collector.analytics.summary import service_health
from collector.analytics.summary import summary as build_summary
from collector.analytics.ui import trace_url, ui_base_url
from collector.analytics.unpriced import folded_spans, unpriced_models
from collector.analytics.window import TimeWindow
from collector.cli import app
from collector.cli._reporting import (
    ReportContext,
    _analytics,
    _emit,
    _exact,
    _fail,
    _limit,
    _metrics,
    _offset,
    _run,
    report_options,
    store_options,
)

EXPORT_LIMIT = 1_000_000


@app.command("report")
@report_options()
def report(
    by: str = typer.Option("operation", "--by", help="operation, service, agent, role, user or hour (of day)."),
    slow_ms: float = typer.Option(DEFAULT_SLOW_MS, "--slow-ms", help="Slow threshold (ms)."),
    very_slow_ms: float = typer.Option(DEFAULT_VERY_SLOW_MS, "--very-slow-ms", help="Very slow threshold (ms)."),
    *,
    c: ReportContext,
    limit: int = _limit,
    offset: int = _offset,
    exact: bool = _exact,
) -> None:
    """Performance: calls, avg, p50/p95/p99, max, success/error rate, slow and very slow counts."""
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
@report_options()
def stats_command(
    granularity: str = typer.Option("hour", "--granularity", "-g", help="hour, day, week or month."),
    *,
    c: ReportContext,
    exact: bool = _exact,
) -> None:
    """Time series: operations, successes, failures, success rate, avg and p95 duration, tokens, cost, quality."""
    with _analytics(c, exact=exact) as a:
        _emit(c, _run(lambda: a.timeseries(c.window, c.filters, granularity)), f"time series per {granularity}")


@app.command("costs")
@report_options()
def costs(
    by: str = typer.Option("model", "--by", help=", ".join(COST_KEYS) + "."),
    correlation_id: str | None = typer.Option(None, "--correlation-id", help="Whole cost of one request."),
    projection: bool = typer.Option(False, "--projection", help="Month-to-date, daily burn, month-end projection."),
    per_request: bool = typer.Option(
        False, "--per-request", help="Cost per request: per trace, or per request into --service."
    ),
    *,
    c: ReportContext,
    limit: int = _limit,
    offset: int = _offset,
) -> None:
    """Cost by model, provider, tenant, user, agent, operation, service or correlation id; cost per success."""
    with _analytics(c) as a:
        if correlation_id is not None:
            found = a.correlation_cost(correlation_id)
            _emit(c, found if found is not None else [], f"cost of correlation id {correlation_id}")
            if found is not None:
                _ui_links(c, [(None, correlation_id)])
            return
        if projection:
            _emit(c, a.cost_projection(c.filters), "cost projection", empty=False)
            return
        if per_request:
            per = _run(lambda: a.request_cost(c.window, c.filters))
            _emit(c, per, "cost per request", empty=False)
            if per.requests is None and c.fmt == "table" and c.output is None:
                typer.echo("requests unknown: the window reads rollups written before migration 0030 (no root count)")
            return
        rows = _run(lambda: a.costs(c.window, c.filters, by=by, limit=limit, offset=offset))
        _emit(c, rows, f"cost by {by}")
        if c.fmt == "table" and c.output is None:
            if any(r.estimated for r in rows):
                typer.echo(
                    "estimated: head-sampled spans contributed; each weighs its adjusted count (1 / its sampling "
                    "probability), so calls, tokens and cost estimate the whole"
                )
            _unpriced_note(a, c.window)


def _unpriced_note(a: Analytics, window: TimeWindow) -> None:
    """Calls whose model had no price are in no row above: say how many, so a total is never silently short."""
    folded = folded_spans(a.conn, window)
    if folded:
        typer.echo(
            f"{folded} spans repeated an LLM call another span holds the cost of: priced once (cost.duplicate_of)"
        )
    missing = unpriced_models(a.conn, window)
    if missing:
        calls = sum(m.calls for m in missing)
        n_in, n_out = sum(m.input_tokens for m in missing), sum(m.output_tokens for m in missing)
        names = ", ".join(m.model for m in missing[:5]) + (", ..." if len(missing) > 5 else "")
        typer.echo(
            f"not in these totals: {calls} LLM calls ({n_in} input, {n_out} output tokens) of models without a "
            f"price ({names}); see otel-metrics prices --unpriced"
        )


@app.command("trends")
@report_options(default_hours=24.0 * 7)
def trends(
    granularity: str = typer.Option("day", "--granularity", "-g", help="hour, day, week or month."),
    metric: list[str] = _metrics,
    *,
    c: ReportContext,
) -> None:
    """Least-squares slope, r², p-value and verdict per metric (default lookback 7 days)."""
    with _analytics(c) as a:
        result = _run(lambda: a.trends(c.window, c.filters, granularity, metric))
        _emit(c, result, f"trends per {granularity}", empty=all(t.points == 0 for t in result))


@app.command("outliers")
@report_options()
def outliers(
    metric: str = typer.Option("duration", "--metric", help="duration or cost."),
    threshold: float = typer.Option(DEFAULT_Z_THRESHOLD, "--threshold", "-z", help="|z-score| at least this."),
    *,
    c: ReportContext,
    limit: int = _limit,
) -> None:
    """Spans far from their operation's mean (z-score), with trace id and correlation id."""
    with _analytics(c) as a:
        result = _run(lambda: a.outliers(c.window, c.filters, metric=metric, threshold=threshold, limit=limit))
        _emit(c, result, f"{metric} outliers (|z| >= {threshold:g})")
        _ui_links(c, [(o.trace_id, None) for o in result])


def _ui_links(c: ReportContext, ids: list[tuple[str | None, str | None]]) -> None:
    """Under a table: the UI page of each (trace id, correlation id) shown, when the config has the UI."""
    base = ui_base_url(c.config) if c.fmt == "table" and c.output is None else None
    if base is None:
        return
    seen: set[str] = set()
    for trace_id, correlation_id in ids:
        url = trace_url(base, trace_id, correlation_id) if trace_id or correlation_id else None
        if url is not None and url not in seen:
            seen.add(url)
            typer.echo(f"{trace_id or correlation_id}  {url}")


@app.command("percentiles")
@report_options()
def percentiles(
    field: str = typer.Option("duration", "--field", help="duration, cost, tokens, quality or attribute:<name>."),
    *,
    c: ReportContext,
    exact: bool = _exact,
) -> None:
    """p50/p75/p90/p95/p99, mean, median, std, min, max and count."""
    with _analytics(c, exact=exact) as a:
        result = _run(lambda: a.percentiles(c.window, c.filters, field))
        _emit(c, result, f"percentiles of {field}", empty=result.count == 0)


@app.command("insights")
@report_options(default_hours=compose.INSIGHTS_LOOKBACK.total_seconds() / 3600.0, without=("user",))
def insights(
    minutes_saved: float | None = typer.Option(None, "--minutes-saved", help="Baseline minutes saved per task."),
    hourly_rate: float | None = typer.Option(None, "--hourly-rate", help="USD per hour of the saved time."),
    *,
    c: ReportContext,
) -> None:
    """Fastest agent per operation, most cost-efficient, highest quality, peak hours, degrading operations
    (default lookback 7 days); recommendations and, with --minutes-saved and --hourly-rate, business value (default
    lookback 30 days). The HTTP API's /insights, /recommendations and /business-value give the same answers."""
    now = datetime.now(UTC)
    advice_window = c.window_with(compose.ADVICE_LOOKBACK.total_seconds() / 3600.0, now)
    if (minutes_saved is None) != (hourly_rate is None):
        raise _fail("--minutes-saved and --hourly-rate go together")
    with _analytics(c) as a:
        result: dict[str, Any] = {
            "insights": compose.insights(a, c.window, c.filters),
            "recommendations": compose.recommendations(a, advice_window, c.filters, now),
        }
        if minutes_saved is not None and hourly_rate is not None:
            result["business_value"] = _run(
                lambda: compose.business_value(a, advice_window, c.filters, minutes_saved, hourly_rate)
            )
    _emit_insights(c, result)


def _emit_insights(c: ReportContext, result: dict[str, Any]) -> None:
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


@app.command("summary")
@store_options()
def summary_command(*, c: ReportContext) -> None:
    """Last 24 h, last 30 days, open alerts, pending recommendations, overall and per-service status."""
    with _analytics(c) as a:
        result = build_summary(a)
        services = service_health(a)
        if c.fmt == "table" and c.output is None:
            render(result, title=f"summary: {result.status}")
            render(services, title="services")
            return
        _emit(c, {"summary": result, "services": services} if c.fmt == "json" else [result], "summary", empty=False)


@app.command("export")
@report_options(fmt=typer.Option("csv", "--format", "-f", help="csv or json (lines)."), formats=("csv", "json"))
def export(*, c: ReportContext, limit: int = typer.Option(EXPORT_LIMIT, "--limit")) -> None:
    """Raw spans of the window (hot columns) as CSV or JSON lines, streamed."""
    count = 0
    with _analytics(c) as a, contextlib.ExitStack() as stack:
        handle = stack.enter_context(open(c.output, "w", encoding="utf-8", newline="")) if c.output else sys.stdout
        writer = csv.writer(handle, lineterminator="\n") if c.fmt == "csv" else None
        if writer:
            writer.writerow(EXPORT_COLUMNS)
        for span in _run(lambda: a.spans(c.window, c.filters, limit=limit)):
            if writer:
                writer.writerow(
                    ["" if v is None else (v.isoformat() if isinstance(v, datetime) else v) for v in span.values()]
                )
            else:
                handle.write(json.dumps(span, default=str) + "\n")
            count += 1
    if count == 0:
        typer.echo("no data", err=True)
    elif c.output:
        typer.echo(f"wrote {count} spans to {c.output}", err=True)


# Registered after the report commands, so they follow them in --help.
from collector.cli import alerts as _alerts  # noqa: E402,F401  (alerts list|ack|resolve|evaluate)
from collector.cli import budgets as _budgets  # noqa: E402,F401  (budgets list|set|delete)
