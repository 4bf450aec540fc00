"""CLI ``alerts``: list, acknowledge, resolve, and evaluate the rules once (the same alert round the HTTP API's
``POST /alerts/evaluate`` and the collector's ``analytics`` extension run: same rules, same record, same webhook)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from collector.analytics import compose
from collector.analytics.alerts import AlertStore
from collector.analytics.config import AnalyticsConfig, config_from_file
from collector.cli import app
from collector.cli._reporting import (
    ReportContext,
    _analytics,
    _config,
    _dsn,
    _emit,
    _fail,
    _limit,
    _no_window,
    _offset,
    _run,
    store_options,
)

alerts_app = typer.Typer(help="Alerts: list, ack, resolve, evaluate.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("list")
@store_options()
def alerts_list(
    status: str | None = typer.Option(None, "--status", help="active, acknowledged, resolved or open."),
    *,
    c: ReportContext,
    limit: int = _limit,
    offset: int = _offset,
) -> None:
    """Stored alerts, newest first."""
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
    with _analytics(_no_window(config, dsn, "table", None)) as a:
        if AlertStore(a.conn).acknowledge(alert_id, by) is None:
            raise _fail(f"no active alert with id {alert_id}", 1)
    typer.echo(f"alert {alert_id} acknowledged")


@alerts_app.command("resolve")
def alerts_resolve(alert_id: int = typer.Argument(...), config: Path = _config, dsn: str | None = _dsn) -> None:
    """Resolve an open alert (exit 1 if it is not open)."""
    with _analytics(_no_window(config, dsn, "table", None)) as a:
        if AlertStore(a.conn).resolve(alert_id) is None:
            raise _fail(f"no open alert with id {alert_id}", 1)
    typer.echo(f"alert {alert_id} resolved")


@alerts_app.command("evaluate")
@store_options()
def alerts_evaluate(*, c: ReportContext) -> None:
    """One alert round: evaluate the rules (the config's analytics extension rules as written, the defaults without
    one), store the result and send what opened or resolved to its webhook; the collector's analytics extension
    does this on its schedule."""
    analytics_config = _extension_config(c.config)
    with _analytics(c, compose.thresholds_of(analytics_config)) as a:
        round_ = compose.record_alert_round(a, compose.alert_rules(analytics_config))
    webhook = (analytics_config or AnalyticsConfig()).alerts.webhook
    asyncio.run(compose.deliver_alert_round(round_, webhook))
    opened, resolved = round_.opened, round_.resolved
    typer.echo(f"{len(round_.firings)} firing, {len(opened)} opened, {len(resolved)} resolved", err=True)
    _emit(c, opened, "new alerts", empty=not opened)


def _extension_config(config: Path) -> AnalyticsConfig | None:
    """The ``analytics`` extension's config in the collector config file, if there is one."""
    if not Path(config).is_file():
        return None
    try:
        return config_from_file(config)
    except ValueError as exc:
        raise _fail(str(exc)) from None
