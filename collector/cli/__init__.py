"""The ``otel-metrics`` command. Each command group lives in its own module and registers on ``app``."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="otel-metrics",
    help="OTLP collector, PostgreSQL analytics sink and analytics reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Registration order is the order in --help. Imported for their side effect of adding commands to ``app``.
from collector.cli import api as _api  # noqa: E402,F401  (api)
from collector.cli import db as _db  # noqa: E402,F401  (db migrate|status|…)
from collector.cli import prices as _prices  # noqa: E402,F401  (prices)
from collector.cli import reports as _reports  # noqa: E402,F401  (report, stats, costs, …)
from collector.cli import run as _run  # noqa: E402,F401  (collector, validate)


def main() -> None:
    app()
