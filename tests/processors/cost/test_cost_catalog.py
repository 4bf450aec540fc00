"""The bundled catalog against genai-prices: same data, same model resolution, same cost; plus bills by hand."""

from __future__ import annotations

import json
import random
import warnings
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources

import pytest

from processors.cost import PriceTable, Usage, cost_attributes, default_price_table
from processors.cost._generate import document
from processors.cost.catalog import Catalog

genai_prices = pytest.importorskip("genai_prices")


def test_bundled_file_is_what_the_generator_makes_from_the_pinned_genai_prices() -> None:
    bundled = json.loads(resources.files("processors.cost").joinpath("prices.json").read_text("utf-8"))
    assert bundled == json.loads(json.dumps(document()))


def _usages(rng: random.Random) -> Usage:
    n_in = rng.choice([0, 1, 999, 12_345, 150_000, 200_001, 1_500_000])
    read = rng.randint(0, n_in // 3)
    write = rng.randint(0, n_in // 3)
    n_out = rng.choice([0, 7, 4321, 100_000])
    return Usage(n_in, n_out, read, write, rng.randint(0, write), 0)


def test_costs_equal_genai_prices_for_every_provider_model_and_date() -> None:
    """Every catalog model of the major providers, random usages (tiers crossed) and dates (price history)."""
    rng = random.Random(5)
    table = PriceTable.bundled()
    catalog = table.catalog
    assert catalog is not None
    dates = [datetime(2024, 6, 1, 12, tzinfo=UTC), datetime(2025, 9, 1, 3, tzinfo=UTC), datetime.now(UTC)]
    checked = 0
    for provider in ("openai", "anthropic", "google", "aws", "azure", "mistral", "groq", "deepseek", "x-ai"):
        for model in catalog.models(provider):
            usage = _usages(rng)
            when = rng.choice(dates)
            ours = table.cost(model.id, usage, provider=provider, when=when)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    theirs = genai_prices.calc_price(
                        genai_prices.Usage(
                            input_tokens=usage.input_tokens,
                            output_tokens=usage.output_tokens,
                            cache_read_tokens=usage.cache_read_tokens,
                            cache_write_tokens=usage.cache_write_tokens,
                            cache_write_1h_tokens=usage.cache_write_1h_tokens,
                        ),
                        model.id,
                        provider_id=provider,
                        genai_request_timestamp=when,
                    ).total_price
                except (LookupError, ValueError):
                    continue  # genai-prices cannot price it either (e.g. an output token for an embedding model)
            assert ours == theirs, (provider, model.id, usage, when)
            checked += 1
    assert checked > 350


def test_an_anthropic_bill_by_hand() -> None:
    """claude-sonnet-4 list prices: input 3, cache read 0.30, 5-min write 3.75, 1-hour write 6, output 15 $/MTok."""
    attrs = {
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-20250514",
        "gen_ai.usage.input_tokens": 10_000,  # inclusive of the 1,000 read and 3,000 written
        "gen_ai.usage.cache_read.input_tokens": 1_000,
        "gen_ai.usage.cache_creation.input_tokens": 3_000,
        "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 1_000,
        "gen_ai.usage.output_tokens": 500,
    }
    by_hand = (6_000 * 3 + 1_000 * Decimal("0.30") + 2_000 * Decimal("3.75") + 1_000 * 6 + 500 * 15) / 10**6
    assert by_hand == Decimal("0.0393")
    assert cost_attributes(attrs, default_price_table()) == {"cost.usd": float(by_hand)}
    # Anthropic's raw input_tokens (6,000, exclusive of the cache) is recognised: cache counts exceed it...
    raw = {**attrs, "gen_ai.usage.input_tokens": 0, "gen_ai.usage.cache_read.input_tokens": 4_000}
    assert cost_attributes(raw, default_price_table()) == cost_attributes(
        {**raw, "gen_ai.usage.input_tokens": 7_000}, default_price_table()
    )
    # ...and the Anthropic SDK's own name for cache writes is read too.
    sdk = {k: v for k, v in attrs.items() if k != "gen_ai.usage.cache_creation.input_tokens"}
    sdk["gen_ai.usage.cache_write.input_tokens"] = 3_000
    assert cost_attributes(sdk, default_price_table()) == {"cost.usd": float(by_hand)}


def test_long_context_tier_and_reasoning_and_request_fee() -> None:
    table = default_price_table()
    # gemini-2.5-pro: 1.25/10 $/MTok up to 200k prompt tokens, 2.50/15 above, for all tokens of the call.
    assert table.llm_cost("gemini-2.5-pro", 200_000, 1_000, provider="gcp.vertex_ai") == Decimal("0.26")
    assert table.llm_cost("gemini-2.5-pro", 200_001, 1_000, provider="gcp.vertex_ai") == Decimal("0.5150025")
    custom = table.with_overrides(
        {"r-model": {"input": 1, "output": 10, "reasoning": 20, "request": "0.005", "cache_write": 2}}
    )
    # 100 fresh input + 50 written + 30 plain output + 70 reasoning, plus the per-call fee
    expected = (100 * 1 + 50 * 2 + 30 * 10 + 70 * 20) / Decimal(10**6) + Decimal("0.005")
    assert custom.llm_cost("r-model", 150, 100, cache_write_tokens=50, reasoning_tokens=70) == expected


def test_the_price_in_force_on_the_spans_date() -> None:
    doc = {
        "providers": [
            {
                "id": "p",
                "models": [
                    {
                        "id": "m",
                        "match": {"equals": "m"},
                        "prices": [
                            {"when": None, "price": {"input": "2", "output": "2"}},
                            {"when": {"start_date": "2025-06-01"}, "price": {"input": "1", "output": "1"}},
                        ],
                    }
                ],
            }
        ]
    }
    table = PriceTable(catalog=Catalog(doc))
    before = datetime(2025, 5, 31, 23, 59, tzinfo=UTC)
    after = datetime(2025, 6, 1, 0, 0, tzinfo=UTC)
    assert table.llm_cost("m", 10**6, 0, provider="p", when=before) == 2
    assert table.llm_cost("m", 10**6, 0, provider="p", when=after) == 1
    attrs = {"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 10**6}
    start_ns = int(before.timestamp() * 10**9)
    assert cost_attributes(attrs, table, start_ns=start_ns) == {"cost.usd": 2.0}


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("aws.bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0", "aws"),
        ("azure.ai.openai", "gpt-4o", "openai"),  # Azure lists OpenAI's models through its fallback
        ("gcp.vertex_ai", "claude-3-5-sonnet@20240620", "google"),
        ("openai", "gpt-4o-2024-08-06", "openai"),
        (None, "claude-3-7-sonnet-20250219", "anthropic"),
        (None, "llama-3.3-70b-versatile", "groq"),  # listed by one provider only
    ],
)
def test_provider_routes(provider: str | None, model: str, expected: str) -> None:
    found = default_price_table().lookup(model, provider)
    assert found is not None and found.provider == expected
