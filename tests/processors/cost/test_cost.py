"""cost: the bundled price table, lookup normalisation, exact cost, overrides, bad input, collector face."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors._attributes import attributes_to_dict, set_attribute
from processors.cost import (
    PRICING_ENV_VAR,
    CostConfig,
    ModelPrice,
    PriceTable,
    cost_attributes,
    default_price_table,
    factories,
)
from processors.cost.rates import Tiered
from processors.pipeline import ComponentID, CreateSettings, Request, Signal
from tests.support.sdk_data import attrs_of, metrics_in, number_points


def _unique_model() -> str:
    return f"no-such-model-{uuid.uuid4().hex[:8]}"


def test_bundled_table_is_dated_and_covers_the_major_families() -> None:
    table = PriceTable.bundled()
    assert table.source is not None and table.source.startswith("genai-prices ")
    for model in (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "o3",
        "o4-mini",
        "claude-3-5-sonnet",
        "claude-3-7-sonnet",
        "claude-sonnet-4",
        "claude-opus-4",
        "claude-3-5-haiku",
        "gemini-1.5-pro",
        "gemini-2.0-flash",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "mistral-large",
        "llama-3.3-70b-versatile",
    ):
        price = table.price(model)
        assert price is not None, model
        assert price.input is not None and price.output is not None, model
        rates = [r.at(0) if isinstance(r, Tiered) else r for r in (price.input, price.output)]
        assert rates[0] > 0 and rates[1] >= rates[0], model
    assert table.price("gpt-4o") == ModelPrice(Decimal("2.50"), Decimal("10.00"), Decimal("1.25"))
    sonnet = table.price("claude-sonnet-4-20250514", "anthropic")
    assert sonnet == ModelPrice(
        Decimal(3), Decimal(15), cache_read=Decimal("0.3"), cache_write=Decimal("3.75"), cache_write_1h=Decimal(6)
    )


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("GPT-4o", "gpt-4o"),
        ("openai/gpt-4.1", "gpt-4.1"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet"),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("mistral-large-latest", "mistral-large"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
    ],
)
def test_documented_normalisation(name: str, canonical: str) -> None:
    table = default_price_table()
    assert table.price(name) == table.price(canonical) is not None


def test_normalisation_never_guesses_a_family() -> None:
    table = PriceTable({"my-model": ModelPrice(Decimal(1), Decimal(1))})  # overrides only, no catalog
    assert table.lookup("my-model-super") is None  # not a version suffix
    assert table.lookup("my") is None
    assert table.lookup("") is None
    assert table.lookup("my-model-2025-01-01") is not None
    assert PriceTable.bundled().lookup("claude") is None


def test_llm_cost_is_exact_and_prices_cached_tokens_at_the_cached_rate() -> None:
    table = PriceTable.bundled()
    # 800 fresh input * 2.50 + 200 cached * 1.25 + 500 output * 10.00, per million
    assert table.llm_cost("gpt-4o", 1000, 500, 200) == Decimal("0.00725")
    assert table.llm_cost("gpt-4o", 1000, 500) == Decimal("0.0075")
    # no cached rate known: cached tokens cost the input rate
    assert table.llm_cost("mistral-large", 1000, 0, 400) == table.llm_cost("mistral-large", 1000, 0)
    assert table.llm_cost("gpt-4o", 0, 0) == 0


@pytest.mark.parametrize(
    "counts",
    [(-1, 10, 0), (10, -1, 0), (10, 10, -1), (10, 10, 11), (1.5, 1, 0), (True, 1, 0), ("10", 1, 0)],
)
def test_invalid_token_counts_give_no_cost(counts: tuple[object, object, object]) -> None:
    assert PriceTable.bundled().llm_cost("gpt-4o", *counts) is None  # type: ignore[arg-type]


def test_unknown_model_is_warned_once_and_never_priced(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable.bundled()
    model = _unique_model()
    attrs = {"gen_ai.request.model": model, "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}
    with caplog.at_level(logging.WARNING, logger="processors.cost"):
        for _ in range(3):
            assert cost_attributes(attrs, table) == {}
            assert table.llm_cost(model, 1, 1) is None
    warnings = [r for r in caplog.records if model in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


def test_cost_attributes_rules() -> None:
    table = PriceTable.bundled()
    base = {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 500,
    }
    assert cost_attributes(base, table) == {"cost.usd": 0.0075}
    assert cost_attributes({**base, "cost.usd": 1.0}, table) == {}  # never overwrite a recorded cost
    assert cost_attributes({"gen_ai.request.model": "gpt-4o"}, table) == {}  # nothing to price
    assert cost_attributes({"gen_ai.usage.input_tokens": 5}, table) == {}  # no model
    # the response model wins; an unknown response model falls back to the request model
    assert cost_attributes({**base, "gen_ai.response.model": "gpt-4o-mini-2024-07-18"}, table) == {
        "cost.usd": float(table.llm_cost("gpt-4o-mini", 1000, 500) or 0)
    }
    assert cost_attributes({**base, "gen_ai.response.model": _unique_model()}, table) == {"cost.usd": 0.0075}
    # embeddings: input only; JS-style integral doubles accepted; cached tokens counted
    assert cost_attributes(
        {"gen_ai.request.model": "text-embedding-3-small", "gen_ai.usage.input_tokens": 1_000_000.0}, table
    ) == {"cost.usd": 0.02}
    assert cost_attributes({**base, "gen_ai.usage.cache_read.input_tokens": 200}, table) == {"cost.usd": 0.00725}
    # deprecated prompt/completion names still priced
    old = {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.prompt_tokens": 1000,
        "gen_ai.usage.completion_tokens": 500,
    }
    assert cost_attributes(old, table) == {"cost.usd": 0.0075}


@pytest.mark.parametrize("bad", [-5, 1.5, "100", True, [1]])
def test_cost_attributes_bad_counts(bad: object) -> None:
    attrs = {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": bad,
        "gen_ai.usage.output_tokens": 1,
    }
    assert cost_attributes(attrs, PriceTable.bundled()) == {}


def test_overrides_from_mapping_json_and_yaml_files(tmp_path: Path) -> None:
    table = PriceTable.from_source(
        {
            "gpt-4o": {"input_per_million": "1", "output_per_million": "2"},
            "my-model": {"input": 3, "output": 4},
        }
    )
    assert table.price("gpt-4o") == ModelPrice(Decimal(1), Decimal(2), None)
    assert table.price("my-model-2025-01-01") == ModelPrice(Decimal(3), Decimal(4), None)
    assert table.price("gpt-4o-mini") == PriceTable.bundled().price("gpt-4o-mini")  # others untouched
    assert table.source == PriceTable.bundled().source

    json_file = tmp_path / "prices.json"
    json_file.write_text(json.dumps({"models": {"m-json": {"input_per_million": "0.5", "output_per_million": "1"}}}))
    assert PriceTable.from_source(json_file).llm_cost("m-json", 2_000_000, 0) == Decimal("1.0")
    yaml_file = tmp_path / "prices.yaml"
    yaml_file.write_text(
        "m-yaml:\n  input_per_million: '0.1'\n  output_per_million: 0.2\n  cached_input_per_million: 0\n"
    )
    assert PriceTable.from_source(str(yaml_file)).llm_cost("m-yaml", 10, 10, 10) == Decimal("0.000002")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"m": {"input_per_million": 1}}, "models.m.output: required"),
        ({"m": {"input_per_million": -1, "output_per_million": 1}}, "non-negative"),
        ({"m": {"input_per_million": "abc", "output_per_million": 1}}, "expected a number"),
        ({"m": {"input_per_million": 1, "output_per_million": 1, "typo": 1}}, "unknown price field"),
        ({"m": 5}, "expected a mapping of prices"),
    ],
)
def test_bad_explicit_sources_raise_with_the_field(source: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PriceTable.from_source(source)


def test_env_var_file_is_merged_and_a_bad_one_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    good = tmp_path / "p.json"
    good.write_text(json.dumps({"env-model": {"input_per_million": 1, "output_per_million": 1}}))
    monkeypatch.setenv(PRICING_ENV_VAR, str(good))
    assert PriceTable.from_source(None).price("env-model") is not None
    monkeypatch.setenv(PRICING_ENV_VAR, str(tmp_path / "missing.json"))
    with caplog.at_level(logging.WARNING, logger="processors.cost"):
        table = PriceTable.from_source(None)
    assert table.price("gpt-4o") is not None
    assert PRICING_ENV_VAR in caplog.text


def _span_request(*spans: dict[str, object]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    out = request.resource_spans.add().scope_spans.add().spans
    for i, attrs in enumerate(spans):
        span = out.add(name=f"s{i}")
        for key, value in attrs.items():
            set_attribute(span.attributes, key, value)
    return request


class _Sink:
    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def consume(self, signal: Signal, request: Request) -> None:
        self.requests.append(request)


def test_collector_face_adds_cost_in_place_with_overrides(tmp_path: Path) -> None:
    pricing = tmp_path / "p.json"
    pricing.write_text(json.dumps({"house-model": {"input_per_million": 1, "output_per_million": 2}}))
    config = CostConfig(
        pricing_file=str(pricing), overrides={"gpt-4o": {"input_per_million": 5, "output_per_million": 5}}
    )
    assert config.validate() == []
    request = _span_request(
        {
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 100,
        },
        {"gen_ai.request.model": "house-model", "gen_ai.usage.input_tokens": 1_000_000},
        {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1, "cost.usd": 9.0},
        {"http.route": "/x"},
    )
    (factory,) = factories
    sink = _Sink()
    processor = factory.create(CreateSettings(ComponentID("cost"), Signal.TRACES), config, sink)
    asyncio.run(processor.consume(Signal.TRACES, request))
    assert sink.requests == [request]
    spans = [attributes_to_dict(s.attributes) for s in request.resource_spans[0].scope_spans[0].spans]
    assert spans[0]["cost.usd"] == 0.001
    assert spans[1]["cost.usd"] == 1.0
    assert spans[2]["cost.usd"] == 9.0
    assert "cost.usd" not in spans[3]
    kv = next(kv for kv in request.resource_spans[0].scope_spans[0].spans[0].attributes if kv.key == "cost.usd")
    assert kv.value.WhichOneof("value") == "double_value"


def test_collector_config_validate_names_the_field(tmp_path: Path) -> None:
    assert CostConfig().validate() == []
    errors = CostConfig(pricing_file=str(tmp_path / "nope.json"), overrides={"m": {"input_per_million": 1}}).validate()
    assert len(errors) == 2
    assert errors[0].startswith("pricing_file: ") and "cannot read" in errors[0]
    assert errors[1] == "overrides: models.m.output: required"


def test_collector_face_counts_unpriced_spans_with_their_tokens() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    request = _span_request(
        {"gen_ai.request.model": _unique_model(), "gen_ai.usage.input_tokens": 70, "gen_ai.usage.output_tokens": 5},
        {"gen_ai.request.model": _unique_model(), "gen_ai.usage.input_tokens": 30},
        {"gen_ai.request.model": _unique_model()},  # no tokens: nothing to price, not an unpriced call
        {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1},
    )
    (factory,) = factories
    processor = factory.create(CreateSettings(ComponentID("cost"), Signal.TRACES, meter=meter), CostConfig(), _Sink())
    asyncio.run(processor.consume(Signal.TRACES, request))
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        (m.name, attrs_of(p).get("gen_ai.token.type")): p.value for m in metrics_in(data) for p in number_points(m)
    }
    assert points == {
        ("otelcol_processor_cost_unpriced_spans", None): 2,
        ("otelcol_processor_cost_unpriced_tokens", "input"): 100,
        ("otelcol_processor_cost_unpriced_tokens", "output"): 5,
    }
