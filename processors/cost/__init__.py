"""Cost: ``cost.usd`` (USD, double) for LLM spans, from a dated, provider-aware, overridable price table.

Pure part: ``processors.cost.pricing`` (``PriceTable``, ``price_call``, ``cost_attributes``,
``default_price_table()``; the lookup and how span token counts are read are documented there),
``processors.cost.rates`` (``ModelPrice``, ``Usage`` and the cost formula: input, cache read, cache write
5-minute and 1-hour, output, reasoning, per-request fee, long-context tiers) and ``processors.cost.catalog``
(the bundled ``prices.json``, generated from the genai-prices package by ``python -m
processors.cost._generate``). Unknown models are warned about once and get no cost: never a guess.

Price files (``OTEL_METRICS_PRICING``, ``pricing_file``) are JSON or YAML (``.yaml``/``.yml``), either
``{"models": {name: prices}, "aliases": {alias: name}}`` or a flat ``{name: prices}``; ``prices`` has
``input`` and ``output`` and optional ``cache_read``, ``cache_write``, ``cache_write_1h``, ``reasoning`` (USD
per million tokens) and ``request`` (USD per call); a rate is a number (strings keep decimals exact) or
``{base: rate, tiers: [[start_tokens, rate], ...]}``. The older ``input_per_million``,
``output_per_million`` and ``cached_input_per_million`` are accepted. Overrides win over the catalog per model.

SDK face
    ``processors.sdk.EnrichingSpanProcessor(inner, price_table=..., redact=...)`` adds ``cost.usd`` to
    ended spans that have token counts but no cost (third-party GenAI instrumentations).

Collector face: processor type ``cost`` (traces)
    ``pricing_file`` (default: none; then ``OTEL_METRICS_PRICING`` if set)
        JSON/YAML price file overriding the bundled table per model.
    ``overrides`` (default ``{}``)
        ``model: {input: 2.5, output: 10, cache_read: 1.25}``; applied after ``pricing_file``.
"""

from __future__ import annotations

from processors.cost.pricing import (
    COST_KEY,
    PRICING_ENV_VAR,
    ModelPrice,
    PriceTable,
    Usage,
    cost_attributes,
    default_price_table,
)
from processors.cost.processor import CostConfig, factories

# What the SDK and the collector take from here; the rest of the pure part is imported from its module.
__all__ = [
    "COST_KEY",
    "PRICING_ENV_VAR",
    "CostConfig",
    "ModelPrice",
    "PriceTable",
    "Usage",
    "cost_attributes",
    "default_price_table",
    "factories",
]
