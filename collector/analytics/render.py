"""Rendering typed results for people (Rich tables) and machines (JSON, CSV), to stdout or a file."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from .models import to_jsonable

__all__ = ["FORMATS", "render"]

FORMATS = ("table", "json", "csv")
NON_TTY_WIDTH = 240


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 1000 or value == int(value):
            return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 1e15 else f"{value:.3g}"
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _rows(result: Any) -> list[dict[str, Any]]:
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return [{f.name: getattr(result, f.name) for f in dataclasses.fields(result)}]
    if isinstance(result, dict):
        return [result]
    return [
        {f.name: getattr(r, f.name) for f in dataclasses.fields(r)} if dataclasses.is_dataclass(r) else dict(r)
        for r in result
    ]


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if not rows:
        return ""
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: "" if v is None else (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
        )
    return buffer.getvalue()


def _table(title: str, rows: list[dict[str, Any]], columns: Sequence[str] | None) -> Table:
    names = list(columns) if columns else list(rows[0])
    table = Table(title=title, title_justify="left")
    for name in names:
        numeric = any(isinstance(r.get(name), int | float) and not isinstance(r.get(name), bool) for r in rows)
        table.add_column(name, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(_cell(row.get(n)) for n in names))
    return table


def render(
    result: Any,
    fmt: str = "table",
    *,
    title: str = "",
    columns: Sequence[str] | None = None,
    console: Console | None = None,
) -> str | None:
    """JSON and CSV are returned as text (the caller writes them to stdout or --output); tables are printed on
    ``console`` and None is returned."""
    if fmt == "json":
        return json.dumps(to_jsonable(result if not isinstance(result, tuple) else list(result)), indent=2)
    rows = _rows(result)
    if fmt == "csv":
        return _csv(rows)
    if fmt != "table":
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    # Piped or captured output has no terminal width to honour: keep rows on one line.
    console = console or Console(width=None if sys.stdout.isatty() else NON_TTY_WIDTH)
    if rows:
        console.print(_table(title, rows, columns))
    return None
