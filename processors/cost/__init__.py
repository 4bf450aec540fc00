"""Cost: ``cost.usd`` (USD, double) for LLM spans, from a dated, overridable price table.

Pure part (``processors.cost.pricing``): ``PriceTable`` (bundled ``prices.json``: list prices of major
OpenAI, Anthropic, Google, Mistral and Llama-hosting models as of ``PriceTable.as_of``), ``ModelPrice``,
``default_price_table()`` and ``cost_attributes(attributes, table)``. The model-name normalisation and the
cost formula are documented there. Unknown models are warned about once and get no cost: never a guess.

Price files (``OTEL_METRICS_PRICING``, ``pricing_file``) are JSON or YAML (``.yaml``/``.yml``), either
``{"models": {name: prices}, "aliases": {alias: name}}`` like the bundled table, or a flat
``{name: prices}``; ``prices`` has ``input_per_million``, ``output_per_million`` and optional
``cached_input_per_million`` (USD per million tokens; strings keep decimals exact). Entries replace the
bundled ones per model.

SDK face
    ``processors.sdk.EnrichingSpanProcessor(inner, price_table=..., redact=...)`` adds ``cost.usd`` to
    ended spans that have token counts but no cost (third-party GenAI instrumentations).

Collector face: processor type ``cost`` (traces)
    ``pricing_file`` (default: none; then ``OTEL_METRICS_PRICING`` if set)
        JSON/YAML price file overriding the bundled table per model.
    ``overrides`` (default ``{}``)
        ``model: {input_per_million: 2.5, output_per_million: 10, cached_input_per_million: 1.25}``;
        applied after ``pricing_file``.
"""

from __future__ import annotations

from processors.cost.pricing import (
    COST_KEY,
    PRICING_ENV_VAR,
    ModelPrice,
    PriceTable,
    cost_attributes,
    default_price_table,
)
from processors.cost.processor import CostConfig, factories

__all__ = [
    "COST_KEY",
    "PRICING_ENV_VAR",
    "CostConfig",
    "ModelPrice",
    "PriceTable",
    "cost_attributes",
    "default_price_table",
    "factories",
]
