"""Head sampling does not bend the totals: spans sampled by the SDK's consistent probability sampler (``ot=th:`` in
their tracestate) are stored with their adjusted count, and ``costs`` estimates the whole from them, on raw spans and
on rollups alike, and says it is an estimate.

The bound: N calls with costs c_i, each trace kept with probability p (independently: the trace ids are uniform),
and the Horvitz-Thompson estimate sum(c_i / p) over the kept ones has standard deviation
sigma = sqrt(sum(c_i^2) (1 - p) / p). With the seeded trace ids below the estimate is within 3 sigma of the truth.
The ids, and so the sample, are fixed by the seed: the test is deterministic.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind

from collector.analytics.queries import Analytics
from collector.analytics.window import TimeWindow
from collector.exporters.postgres.sampling import from_trace_state
from collector.exporters.postgres.writer import PostgresWriter
from processors.pipeline import Signal

experimental = pytest.importorskip("opentelemetry.sdk.trace._sampling_experimental")

N = 2_000
P = 0.1
SEED = 20261202


class _SeededIds(IdGenerator):
    """Uniform ids from a seeded generator: the trace ids, and so which traces the sampler keeps, are fixed."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._random.getrandbits(128) or 1


def _calls(probability: float, seed: int = SEED) -> tuple[ExportTraceServiceRequest, list[Decimal]]:
    """N requests, each a trace: a server span and a priced ``chat`` child (cost from 0.0001 to 0.01 USD), sampled
    by the SDK's consistent probability sampler at ``probability``; returns what was exported and every call's
    cost (kept or not)."""
    exporter = InMemorySpanExporter()
    sampler = experimental.composite_sampler(
        experimental.composable_parent_threshold(experimental.composable_traceid_ratio_based(probability))
    )
    provider = TracerProvider(sampler=sampler, id_generator=_SeededIds(seed))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("sampled-app")
    costs = random.Random(seed + 1)
    truth: list[Decimal] = []
    for i in range(N):
        cost = Decimal(costs.randrange(1, 101)) / 10_000
        truth.append(cost)
        # Attributes are set after the start: the SDK's composite sampler (1.45) keeps only its own attributes of
        # those given to start_span.
        with tracer.start_as_current_span("handle", kind=SpanKind.SERVER) as root:
            root.set_attribute("tenant.id", f"t{i % 3}")
            call = tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT)
            call.set_attributes({"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 100})
            call.set_attribute("cost.usd", float(cost))
            call.end()
    return encode_spans(exporter.get_finished_spans()), truth


def test_the_sdks_threshold_gives_the_adjusted_count() -> None:
    threshold = experimental._util.calculate_threshold(P)
    th = experimental._trace_state.serialize_th(threshold)
    assert from_trace_state(f"vendor=x,ot=th:{th};rv:00000000000001") == pytest.approx(1 / P, rel=1e-12)
    assert from_trace_state("ot=th:8") == 2.0  # 0x8 << 52: half the 56-bit space rejected
    assert from_trace_state("ot=p:3") == 8.0  # the older form: probability 2^-3
    assert from_trace_state("ot=th:0") is None  # probability 1: counts once
    for malformed in ("ot=th:", "ot=th:zz", "ot=th:123456789abcdef", "ot=p:x", "other=th:8", "ot=rv:00000000000001"):
        assert from_trace_state(malformed) is None, malformed


def _costs(dsn: str, hours: float, by: str = "model") -> list[Any]:
    now = datetime.now(UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        return Analytics(conn).costs(TimeWindow(now - timedelta(hours=hours), now + timedelta(minutes=5)), by=by)


def test_costs_estimate_the_whole_at_ten_percent_within_three_sigma(pg_dsn: str) -> None:
    request, truth = _calls(P)
    stored = [
        s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans if s.name.startswith("chat")
    ]
    assert 0 < len(stored) < N / 5  # about N * P calls kept
    kept = sum(Decimal(repr(a.value.double_value)) for s in stored for a in s.attributes if a.key == "cost.usd")
    writer = PostgresWriter(pg_dsn)
    try:
        # first half, then all of it: the first batch goes by COPY (rows aggregated in Python), the redelivered
        # second by the staging path (in SQL), which must weigh only the spans it inserted
        half = ExportTraceServiceRequest()
        half.resource_spans.add().CopyFrom(request.resource_spans[0])
        spans = half.resource_spans[0].scope_spans[0].spans
        del spans[len(spans) // 2 :]
        assert writer.write(Signal.TRACES, half).inserted == len(spans)
        writer.write(Signal.TRACES, request)
    finally:
        writer.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        weights = conn.execute("SELECT DISTINCT adjusted_count FROM spans").fetchall()
    assert [w for (w,) in weights] == [pytest.approx(1 / P, rel=1e-12)]

    whole = float(sum(truth))
    sigma = math.sqrt(sum(float(c) ** 2 for c in truth) * (1 - P) / P)
    raw = _costs(pg_dsn, 1)  # a window of up to a day reads raw spans
    rolled = _costs(pg_dsn, 48)  # longer ones read span_rollups_1h plus span_rollups_unsampled_1h
    for rows in (raw, rolled):
        row, servers = rows  # the chat spans, then the server spans (no model, no cost)
        assert servers.key == "(none)" and servers.cost_usd == 0 and servers.estimated
        assert row.key == "gpt-4o" and row.estimated
        assert row.cost_usd == pytest.approx(float(kept) / P, rel=1e-9)  # each kept call weighs 1 / p
        assert abs(row.cost_usd - whole) <= 3 * sigma, (row.cost_usd, whole, sigma)
        assert row.calls == round(len(stored) / P) and row.input_tokens == round(100 * len(stored) / P)
    by_tenant = _costs(pg_dsn, 48, by="tenant")
    assert sum(r.cost_usd for r in by_tenant) == pytest.approx(rolled[0].cost_usd, rel=1e-9)
    assert all(r.estimated for r in by_tenant)


def test_unsampled_calls_are_exact_and_not_estimates(pg_dsn: str) -> None:
    request, truth = _calls(1.0)
    writer = PostgresWriter(pg_dsn)
    try:
        writer.write(Signal.TRACES, request)
    finally:
        writer.close()
    for hours in (1, 48):
        row, servers = _costs(pg_dsn, hours)
        assert not row.estimated and not servers.estimated and row.calls == servers.calls == N
        assert Decimal(repr(row.cost_usd)) == sum(truth)


def _only(request: ExportTraceServiceRequest, prefix: str) -> ExportTraceServiceRequest:
    out = ExportTraceServiceRequest()
    out.CopyFrom(request)
    for rs in out.resource_spans:
        for ss in rs.scope_spans:
            kept = [s for s in ss.spans if s.name.startswith(prefix)]
            del ss.spans[:]
            ss.spans.extend(kept)
    return out


@pytest.mark.parametrize("first", ["chat", "handle"])
def test_a_traces_spans_in_different_batches_share_its_weight(pg_dsn: str, first: str) -> None:
    """The SDK writes the threshold on root spans only; an agent's LLM calls end, and are exported, long before its
    request's root: whichever batch comes second, the calls weigh their trace's adjusted count."""
    request, _ = _calls(P)
    chat = [a for s in _only(request, "chat").resource_spans[0].scope_spans[0].spans for a in s.attributes]
    kept = sum(Decimal(repr(a.value.double_value)) for a in chat if a.key == "cost.usd")
    second = "handle" if first == "chat" else "chat"
    for prefix in (first, second):
        writer = PostgresWriter(pg_dsn)  # each batch from its own writer: another connection, as another process
        try:
            writer.write(Signal.TRACES, _only(request, prefix))
        finally:
            writer.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        unweighted = conn.execute("SELECT count(*) FROM spans WHERE adjusted_count IS NULL").fetchone()
    assert unweighted == (0,)
    for hours in (1, 48):
        row = _costs(pg_dsn, hours)[0]
        assert row.key == "gpt-4o" and row.estimated
        assert row.cost_usd == pytest.approx(float(kept) / P, rel=1e-9)
