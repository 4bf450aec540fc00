"""``otel-metrics prices``: the price table, one model's price, and the models seen in the sink but not priced."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import typer

from collector.analytics.render import FORMATS, render
from collector.analytics.session import connect, resolve_dsn
from collector.analytics.unpriced import unpriced_models
from collector.analytics.window import TimeWindow, parse_time
from collector.cli import app
from processors.cost import PriceTable

_PRICE_FIELDS = ("input", "cache_read", "cache_write", "cache_write_1h", "output", "reasoning", "request")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _row(provider: str | None, model: str, price: Any) -> dict[str, Any]:
    described = price.describe()
    return {"provider": provider or "(override)", "model": model, **{f: described.get(f) for f in _PRICE_FIELDS}}


def _write(result: Any, fmt: str, title: str) -> None:
    text = render(result, fmt, title=title)
    if text is not None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command("prices")
def prices(
    model: str | None = typer.Option(None, "--model", "-m", help="Look up one model (as spans name it)."),
    provider: str | None = typer.Option(None, "--provider", "-p", help="Provider (gen_ai.provider.name or id)."),
    at: str | None = typer.Option(None, "--at", help="Price in force at this time (ISO 8601; default now)."),
    unpriced: bool = typer.Option(False, "--unpriced", help="Models seen in the sink without a price."),
    hours: float = typer.Option(24 * 7, "--hours", help="With --unpriced: the last N hours."),
    pricing: Path | None = typer.Option(None, "--pricing", help="Price overrides file (else OTEL_METRICS_PRICING)."),
    config: Path = typer.Option(Path("otel-collector.yaml"), "--config", "-c", help="Collector config (--unpriced)."),
    dsn: str | None = typer.Option(None, "--dsn", help="postgresql:// URL (--unpriced).", envvar="OTEL_METRICS_DSN"),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json or csv."),
) -> None:
    """Prices (USD per million tokens; request: per call) from the bundled genai-prices catalog and overrides."""
    if fmt not in FORMATS:
        raise _fail(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    try:
        table = PriceTable.from_source(pricing)
        when = parse_time(at) if at else datetime.now(UTC)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if unpriced:
        _unpriced(table, hours, config, dsn, fmt)
        return
    if model is not None:
        found = table.lookup(model, provider, when)
        if found is None:
            raise _fail(f"no price for model {model!r}" + (f" at provider {provider!r}" if provider else ""), 1)
        _write([_row(found.provider, found.model, found.price)], fmt, f"price of {model} at {when:%Y-%m-%d}")
        return
    rows = [_row(None, name, price) for name, price in table.overrides().items()]
    catalog = table.catalog
    if catalog is not None:
        if provider is not None and catalog.provider_id(provider) is None:
            raise _fail(f"unknown provider {provider!r}; known: {', '.join(catalog.providers())}")
        for entry in catalog.models(provider):
            match = table.lookup(entry.id, entry.provider, when)
            if match is not None:
                rows.append(_row(entry.provider, entry.id, match.price))
    _write(rows, fmt, f"prices at {when:%Y-%m-%d} ({table.source})")


def _unpriced(table: PriceTable, hours: float, config: Path, dsn: str | None, fmt: str) -> None:
    try:
        conn = connect(resolve_dsn(config, dsn))
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise _fail(f"cannot connect to the database: {exc}", 1) from None
    with conn:
        rows = unpriced_models(conn, TimeWindow.last(hours), lambda m, p: table.lookup(m, p) is not None)
    if not rows and fmt == "table":
        typer.echo(f"every LLM span of the last {hours:g} hours has a cost")
        return
    _write(rows, fmt, "models seen without a price")
