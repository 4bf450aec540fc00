"""CLI ``budgets``: list, set and delete spending budgets per agent, tenant or model and period."""

from __future__ import annotations

from pathlib import Path

import typer

from collector.analytics.budgets import DEFAULT_CRITICAL_RATIO, DEFAULT_WARNING_RATIO, Budget, BudgetStore
from collector.cli import app
from collector.cli._reporting import ReportContext, _analytics, _config, _dsn, _emit, _fail, _no_window, store_options

budgets_app = typer.Typer(
    help="Budgets per agent, tenant or model and period (day, week, month).", no_args_is_help=True
)
app.add_typer(budgets_app, name="budgets")


@budgets_app.command("list")
@store_options()
def budgets_list(*, c: ReportContext) -> None:
    """Every budget with its spend this period, utilization and ok/warning/critical."""
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
    c = _no_window(config, dsn, "table", None)
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
    c = _no_window(config, dsn, "table", None)
    with _analytics(c) as a:
        if not BudgetStore(a.conn).delete(scope, name, period):
            raise _fail(f"no budget {scope}/{name}/{period}", 1)
    typer.echo(f"deleted budget {scope}/{name}/{period}")
