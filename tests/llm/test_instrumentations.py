"""Real openai and anthropic clients, instrumented as people run them, against the local fake provider: the spans
they make are priced (through our SDK enrichment) exactly as the provider's price sheet bills the calls, streams
included, and a call traced twice (the Anthropic SDK's own tracing plus an instrumentation) is priced once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from processors.cost import default_price_table
from processors.sdk import EnrichingSpanProcessor
from tests.llm import fake_provider

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")

M = Decimal(1_000_000)
# The providers' list prices (USD per million tokens) and each call's bill, worked by hand from fake_provider.USAGE.
BILL = {
    # 176 fresh input * 0.15 + 1,024 cached * 0.075 + 80 output * 0.60
    "gpt-4o-mini": (176 * Decimal("0.15") + 1024 * Decimal("0.075") + 80 * Decimal("0.60")) / M,
    # 300 input * 1.10 + 900 output (640 of them reasoning, billed as output) * 4.40
    "o4-mini": (300 * Decimal("1.10") + 900 * Decimal("4.40")) / M,
    # 1,000 fresh * 3 + 8,000 read * 0.30 + 3,000 written (5-minute cache) * 3.75 + 400 output * 15
    "claude-sonnet-4-20250514": (1000 * 3 + 8000 * Decimal("0.30") + 3000 * Decimal("3.75") + 400 * 15) / M,
    # 900 input * 0.80 + 120 output * 4
    "claude-3-5-haiku-20241022": (900 * Decimal("0.80") + 120 * 4) / M,
}


@pytest.fixture
def served() -> Iterator[tuple[fake_provider.Served, str]]:
    calls = fake_provider.Served()
    with fake_provider.running(calls) as url:
        yield calls, url


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        EnrichingSpanProcessor(SimpleSpanProcessor(exporter), price_table=default_price_table(), redact=True)
    )
    return provider, exporter


def _cost_by_model(exporter: InMemorySpanExporter) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for span in exporter.get_finished_spans():
        attrs = dict(span.attributes or {})
        if "cost.usd" in attrs:
            model = str(attrs["gen_ai.request.model"])
            out[model] = out.get(model, Decimal(0)) + Decimal(repr(attrs["cost.usd"]))
    return out


def _run_openai(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="test", max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    stream = client.chat.completions.create(
        model="o4-mini", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello stream."


def _run_anthropic(url: str, provider: TracerProvider, sdk_tracing: bool) -> None:
    options: Any = {"tracer_provider": provider, "traces": sdk_tracing}
    client = anthropic.Anthropic(base_url=url, api_key="test", max_retries=0, open_telemetry=options)
    messages = [{"role": "user", "content": "hi"}]
    client.messages.create(model="claude-sonnet-4-20250514", max_tokens=500, messages=messages)
    with client.messages.stream(model="claude-3-5-haiku-20241022", max_tokens=200, messages=messages) as stream:
        assert stream.get_final_text() == "Hello stream."


def test_openllmetry_openai_streaming_included(served: tuple[fake_provider.Served, str]) -> None:
    instrumentation = pytest.importorskip("opentelemetry.instrumentation.openai")
    calls, url = served
    provider, exporter = _provider()
    instrumentor = instrumentation.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        _run_openai(url)
    finally:
        instrumentor.uninstrument()
    assert [c[1] for c in calls.calls] == ["gpt-4o-mini", "o4-mini"]
    assert _cost_by_model(exporter) == {m: BILL[m] for m in ("gpt-4o-mini", "o4-mini")}


# The official openai-v2 instrumentation is installed apart from .venv (scripts/test: pip --target
# .venv/openai-v2): it registers its instrumentor under the entry point name ``openai``, as OpenLLMetry's does, so in
# one environment ``opentelemetry-instrument`` would load both and trace every OpenAI call twice.
OPENAI_V2_PATH = Path(sys.prefix) / "openai-v2"


def test_official_openai_v2_instrumentation_streaming_included(served: tuple[fake_provider.Served, str]) -> None:
    """openai-v2 2.4b0 (with opentelemetry-util-genai 1.1b0; 1.2b0 and later no longer have the module it imports)
    works with our SDK range, streams included. Its chat completion spans carry no cached-token count, so a call
    that read the cache is priced from what the span says: all input at the base rate."""
    if not (OPENAI_V2_PATH / "opentelemetry" / "instrumentation" / "openai_v2").is_dir():
        pytest.skip(f"openai-v2 is installed apart by scripts/test (into {OPENAI_V2_PATH}); not there")
    calls, url = served
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(OPENAI_V2_PATH), str(root)))}
    script = str(Path(__file__).parent / "openai_v2_app.py")
    run = subprocess.run([sys.executable, script, url], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines[0] == {"streamed": "Hello stream."}
    spans = {s["attributes"]["gen_ai.request.model"]: s["attributes"] for s in lines[1:]}
    assert [c[1] for c in calls.calls] == ["gpt-4o-mini", "o4-mini"]
    # the stream's usage (include_usage) reached the span, and the reasoning model is priced at the bill
    assert spans["o4-mini"]["gen_ai.usage.output_tokens"] == 900
    assert Decimal(repr(spans["o4-mini"]["cost.usd"])) == BILL["o4-mini"]
    # 1,024 of gpt-4o-mini's 1,200 input tokens were cache reads; the span does not say so
    assert "gen_ai.usage.cache_read.input_tokens" not in spans["gpt-4o-mini"]
    unaware = (1200 * Decimal("0.15") + 80 * Decimal("0.60")) / M
    assert Decimal(repr(spans["gpt-4o-mini"]["cost.usd"])) == unaware


@pytest.mark.parametrize("sdk_tracing", [False, True])
def test_openllmetry_anthropic_with_and_without_the_sdks_own_tracing(
    served: tuple[fake_provider.Served, str], sdk_tracing: bool
) -> None:
    instrumentation = pytest.importorskip("opentelemetry.instrumentation.anthropic")
    _, url = served
    provider, exporter = _provider()
    instrumentor = instrumentation.AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        _run_anthropic(url, provider, sdk_tracing)
    finally:
        instrumentor.uninstrument()
    # OpenLLMetry's anthropic instrumentation (0.62) makes no span for messages.stream on anthropic 2.x: only the
    # SDK's own tracing sees (and so prices) that call.
    models = ("claude-sonnet-4-20250514", "claude-3-5-haiku-20241022") if sdk_tracing else ("claude-sonnet-4-20250514",)
    assert _cost_by_model(exporter) == {m: BILL[m] for m in models}
    if sdk_tracing:  # two spans per call, one priced; the other points at it
        spans = [dict(s.attributes or {}) for s in exporter.get_finished_spans() if s.attributes]
        with_id = [a for a in spans if "gen_ai.response.id" in a]
        assert len({a["gen_ai.response.id"] for a in with_id}) == 2 and len(with_id) == 3
        assert sum("cost.duplicate_of" in a for a in with_id) == 1


def test_openllmetry_langchain_over_the_openai_client(served: tuple[fake_provider.Served, str]) -> None:
    """LangChain's ChatOpenAI with OpenLLMetry's langchain and openai instrumentations both on: each call once."""
    langchain_instrumentation = pytest.importorskip("opentelemetry.instrumentation.langchain")
    openai_instrumentation = pytest.importorskip("opentelemetry.instrumentation.openai")
    langchain_openai = pytest.importorskip("langchain_openai")
    calls, url = served
    provider, exporter = _provider()
    instrumentors = [langchain_instrumentation.LangchainInstrumentor(), openai_instrumentation.OpenAIInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    try:
        llm = langchain_openai.ChatOpenAI(model="gpt-4o-mini", base_url=f"{url}/v1", api_key="test", max_retries=0)
        assert llm.invoke("hi").content == "Hello from the fake."
        assert "".join(str(c.content) for c in llm.stream("hi", stream_usage=True)) == "Hello stream."
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
    assert len(calls.calls) == 2
    assert _cost_by_model(exporter) == {"gpt-4o-mini": 2 * BILL["gpt-4o-mini"]}
