"""``otel-metrics prices``: the table, one model, and the models the sink saw without a price."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from typer.testing import CliRunner

from collector.analytics.api import AnalyticsAPI
from collector.analytics.config import AnalyticsConfig
from collector.cli import app
from collector.exporters.postgres.writer import PostgresWriter
from processors._attributes import set_attribute
from processors.pipeline import Signal
from tests.collector.analytics.served import serve

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_lookup_shows_every_rate_of_the_price_in_force() -> None:
    code, out, _ = run("prices", "--model", "claude-sonnet-4-20250514", "--provider", "anthropic", "-f", "json")
    assert code == 0
    (row,) = json.loads(out)
    assert row == {
        "provider": "anthropic",
        "model": "claude-sonnet-4-0",
        "input": "3",
        "cache_read": "0.3",
        "cache_write": "3.75",
        "cache_write_1h": "6",
        "output": "15",
        "reasoning": None,
        "request": None,
    }
    code, _, err = run("prices", "--model", "no-such-model-xyz")
    assert code == 1 and "no price for model 'no-such-model-xyz'" in err


def test_table_lists_a_provider_and_overrides_first(tmp_path: Path) -> None:
    overrides = tmp_path / "p.json"
    overrides.write_text(json.dumps({"house-model": {"input": 1, "output": 2}}))
    code, out, _ = run("prices", "--provider", "openai", "--pricing", str(overrides), "-f", "json")
    assert code == 0
    rows = json.loads(out)
    assert rows[0] == {**rows[0], "provider": "(override)", "model": "house-model", "input": "1"}
    assert {"gpt-4o", "gpt-4o-mini"} <= {r["model"] for r in rows}
    assert all(r["provider"] in ("openai", "(override)") for r in rows)
    code, _, err = run("prices", "--provider", "nowhere")
    assert code == 2 and "unknown provider 'nowhere'" in err


def _llm_span(request: ExportTraceServiceRequest, i: int, model: str, cost: float | None) -> None:
    span = (
        request.resource_spans[0]
        .scope_spans[0]
        .spans.add(trace_id=i.to_bytes(16, "big"), span_id=i.to_bytes(8, "big"), name=f"chat {model}")
    )
    span.start_time_unix_nano = time.time_ns() - 60 * 10**9
    span.end_time_unix_nano = span.start_time_unix_nano + 10**6
    for key, value in {
        "gen_ai.request.model": model,
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 10,
        **({"cost.usd": cost} if cost is not None else {}),
    }.items():
        set_attribute(span.attributes, key, value)


def test_unpriced_lists_models_seen_without_cost(pg_dsn: str, tmp_path: Path) -> None:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    set_attribute(rs.resource.attributes, "service.name", "svc")
    rs.scope_spans.add()
    for i in range(1, 4):
        _llm_span(request, i, "house-model", None)
    _llm_span(request, 9, "gpt-4o", 0.5)
    writer = PostgresWriter(pg_dsn)
    try:
        assert writer.write(Signal.TRACES, request).quarantined == 0
    finally:
        writer.close()
    code, out, err = run("prices", "--unpriced", "--dsn", pg_dsn, "-f", "json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert (row["model"], row["provider"], row["calls"], row["input_tokens"], row["output_tokens"]) == (
        "house-model",
        "openai",
        3,
        300,
        30,
    )
    assert row["priced_now"] is False
    overrides = tmp_path / "p.json"
    overrides.write_text(json.dumps({"house-model": {"input": 1, "output": 2}}))
    code, out, _ = run("prices", "--unpriced", "--dsn", pg_dsn, "--pricing", str(overrides), "-f", "json")
    assert json.loads(out)[0]["priced_now"] is True
    # costs says what its totals leave out; the API lists it
    code, out, _ = run("costs", "--dsn", pg_dsn, "--hours", "1")
    assert code == 0 and "not in these totals: 3 LLM calls (300 input, 30 output tokens)" in out
    assert "house-model" in out
    with serve(AnalyticsAPI(lambda: pg_dsn, AnalyticsConfig())) as client:
        body = client.get("/costs/unpriced", params={"hours": 1}).json()
    assert [(i["model"], i["calls"], i["input_tokens"], i["priced_now"]) for i in body["items"]] == [
        ("house-model", 3, 300, None)
    ]


def test_a_call_seen_as_several_spans_is_counted_once_and_the_folds_reported(pg_dsn: str) -> None:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    set_attribute(rs.resource.attributes, "service.name", "svc")
    spans = rs.scope_spans.add().spans
    now = time.time_ns() - 60 * 10**9
    call = {"gen_ai.request.model": "gpt-4o", "gen_ai.response.id": "chatcmpl-1", "gen_ai.usage.output_tokens": 10}
    for span_id, extra in (
        (1, {"gen_ai.usage.input_tokens": 100, "cost.usd": 0.00035}),  # holds the cost
        (2, {"gen_ai.usage.input_tokens": 100, "cost.duplicate_of": (1).to_bytes(8, "big").hex()}),
        # A provider SDK's span of the call, without an input count: not priced, not "unpriced" either; folded by the
        # sink (its output tokens are the call's, counted on span 1), as the collector folds it.
        (3, {}),
    ):
        span = spans.add(trace_id=b"\x07" * 16, span_id=span_id.to_bytes(8, "big"), name="chat gpt-4o")
        span.start_time_unix_nano, span.end_time_unix_nano = now, now + 10**6
        for key, value in {**call, **extra}.items():
            set_attribute(span.attributes, key, value)
    writer = PostgresWriter(pg_dsn)
    try:
        assert writer.write(Signal.TRACES, request).quarantined == 0
    finally:
        writer.close()
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            "SELECT span_id, input_tokens, output_tokens, attributes ->> 'gen_ai.usage.input_tokens' FROM spans"
            " ORDER BY span_id"
        ).fetchall()
    assert [(r[1], r[2], r[3]) for r in rows] == [(100, 10, None), (None, None, "100"), (None, None, None)]
    code, out, err = run("costs", "--dsn", pg_dsn, "--hours", "1")
    assert code == 0, err
    assert "2 spans repeated an LLM call another span holds the cost of" in out
    assert "not in these totals" not in out
    code, out, _ = run("costs", "--dsn", pg_dsn, "--hours", "1", "-f", "json")
    (row,) = json.loads(out)
    assert (row["key"], row["input_tokens"], row["output_tokens"], row["cost_usd"]) == ("gpt-4o", 100, 10, 0.00035)
