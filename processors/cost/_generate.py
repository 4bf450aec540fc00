"""Regenerate the bundled ``prices.json`` from the ``genai-prices`` package (pydantic/genai-prices, MIT).

    pip install 'genai-prices==<version>'   # the dev extra pins the version the bundled file was made from
    python -m processors.cost._generate > processors/cost/prices.json

Why a generated file and not ``genai_prices`` at run time: importing its data takes ~3 s and ~20 MB and pulls in
pydantic and an HTTP client, on every app that calls ``configure()`` and in the collector. The file keeps what
pricing a GenAI span needs, per provider and model: the match rules (``processors.cost.catalog`` evaluates them
as ``genai_prices.types`` does), every dated price (the one in force on the span's date is used), and the
token, cache-write (5-minute and 1-hour), reasoning and per-request prices with their long-context tiers.
Audio, image, search and other non-token units, and service-tier variants (batch, flex, priority), are left
out: a span reports none of them. ``tests/processors/cost/test_cost_catalog.py`` checks the file against the
installed package.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from importlib.metadata import version
from typing import Any

# genai-prices price key -> our field (USD per million tokens; ``request``: USD per request).
PRICE_KEYS = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cache_read",
    "cache_write_mtok": "cache_write",
    "cache_write_1h_mtok": "cache_write_1h",
    "output_reasoning_mtok": "reasoning",
    "requests_kcount": "request",
}


def _decimal(value: Decimal, per_request: bool) -> str:
    return str(value / 1000 if per_request else value)


def _price_value(value: Any, per_request: bool) -> Any:
    from genai_prices.types import TieredPrices

    if isinstance(value, TieredPrices):
        return {
            "base": _decimal(value.base, per_request),
            "tiers": [[tier.start, _decimal(tier.price, per_request)] for tier in value.tiers],
        }
    return _decimal(value, per_request)


def _prices(model_price: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, field_name in PRICE_KEYS.items():
        value = getattr(model_price, key, None)
        if value is not None:
            out[field_name] = _price_value(value, key == "requests_kcount")
    return out


def _constraint(constraint: Any) -> dict[str, str] | None:
    from genai_prices.types import StartDateConstraint, TimeOfDateConstraint

    if constraint is None:
        return None
    if isinstance(constraint, StartDateConstraint):
        return {"start_date": constraint.start_date.isoformat()}
    if isinstance(constraint, TimeOfDateConstraint):
        return {"start_time": constraint.start_time.isoformat(), "end_time": constraint.end_time.isoformat()}
    raise TypeError(f"unknown price constraint {constraint!r}")


def _clause(clause: Any) -> Any:
    if clause is None:
        return None
    name = type(clause).__name__
    if name == "ClauseOr":
        return {"or": [_clause(c) for c in clause.or_]}
    if name == "ClauseAnd":
        return {"and": [_clause(c) for c in clause.and_]}
    ((key, value),) = ((k, v) for k, v in vars(clause).items())
    return {key: value}


def _model(model: Any) -> dict[str, Any] | None:
    from genai_prices.types import ModelPrice

    history = (
        [(None, model.prices)]
        if isinstance(model.prices, ModelPrice)
        else [(c.constraint, c.prices) for c in model.prices]
    )
    prices = [{"when": _constraint(when), "price": _prices(price)} for when, price in history]
    if not any(p["price"] for p in prices):
        return None  # priced only in units a span does not report
    entry: dict[str, Any] = {"id": model.id, "match": _clause(model.match), "prices": prices}
    if model.context_window:
        entry["context_window"] = model.context_window
    return entry


def document() -> dict[str, Any]:
    """The bundled table, from the installed genai-prices."""
    from genai_prices.data import providers

    out = []
    for provider in providers:
        models = [m for m in (_model(model) for model in provider.models) if m is not None]
        out.append(
            {
                "id": provider.id,
                "name": provider.name,
                "provider_match": _clause(provider.provider_match),
                "model_match": _clause(provider.model_match),
                "fallback": list(provider.fallback_model_providers or []),
                "models": models,
            }
        )
    return {
        "source": f"genai-prices {version('genai-prices')} (https://github.com/pydantic/genai-prices)",
        "refresh": "python -m processors.cost._generate > processors/cost/prices.json",
        "currency": "USD",
        "unit": "per 1,000,000 tokens; request: per request",
        "providers": out,
    }


def main() -> None:
    json.dump(document(), sys.stdout, separators=(",", ":"), sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
