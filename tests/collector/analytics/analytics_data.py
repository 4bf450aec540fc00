"""Deterministic span data for the analytics tests: generated with numpy, sent through the sink's real writer
(OTLP request -> spans + rollups), and kept as numpy columns for reference statistics."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector.exporters.postgres.writer import PostgresWriter, WriterSettings
from processors.pipeline import RetryableError, Signal

# The data ends here (hour aligned, in the past, so "now"-relative defaults never see it by accident).
END = datetime(2026, 11, 20, tzinfo=UTC)
DAYS = 10
OPERATIONS = (
    ("checkout", "checkout.pay"),
    ("checkout", "checkout.cart"),
    ("search", "search.query"),
    ("agents", "agents.plan"),
)
AGENTS = ("planner", "retriever", "writer")
ROLES = {"planner": "lead", "retriever": "worker", "writer": "worker"}
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet")
PROVIDERS = {"gpt-4o": "openai", "gpt-4o-mini": "openai", "claude-3-5-sonnet": "anthropic"}
TENANTS = ("acme", "globex")
USERS = tuple(f"user{i}" for i in range(6))


@dataclass
class Dataset:
    start: datetime
    end: datetime
    start_s: np.ndarray  # span start, seconds since the Unix epoch
    duration_ms: np.ndarray
    service: np.ndarray
    operation: np.ndarray
    error: np.ndarray
    tenant: np.ndarray
    user: np.ndarray
    agent: np.ndarray  # '' = no agent
    role: np.ndarray
    model: np.ndarray  # '' = no model
    provider: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    cost: np.ndarray
    quality: np.ndarray  # nan = none
    correlation: np.ndarray
    trace_ids: list[bytes]

    def mask(self, start: datetime, end: datetime) -> np.ndarray:
        return (self.start_s >= start.timestamp()) & (self.start_s < end.timestamp())

    def concat(self, other: Dataset) -> Dataset:
        """This data set's spans and ``other``'s, over this one's window."""
        arrays: dict[str, Any] = {
            f.name: np.concatenate([getattr(self, f.name), getattr(other, f.name)]) for f in fields(self)[2:-1]
        }
        return replace(self, **arrays, trace_ids=self.trace_ids + other.trace_ids)


@dataclass
class Loaded:
    """The ``dataset`` fixture: a data set and the DSN of the schema it was loaded into."""

    dsn: str
    data: Dataset


def generate(n: int = 6000, seed: int = 7, end: datetime = END, days: float = DAYS) -> Dataset:
    rng = np.random.default_rng(seed)
    start = end - timedelta(days=days)
    start_s = np.sort(rng.uniform(start.timestamp(), end.timestamp(), n))
    # Whole microseconds, as the sink stores them.
    start_s = np.floor(start_s * 1e6) / 1e6
    op_index = rng.integers(0, len(OPERATIONS), n)
    day = (start_s - start.timestamp()) / 86400.0
    mu = np.array([5.0, 3.5, 4.0, 6.0])[op_index]
    # search.query gets slower every day (a degrading trend); the others are stationary.
    mu = mu + np.where(op_index == 2, 0.08 * day, 0.0)
    duration_ms = np.round(rng.lognormal(mu, 0.6), 3)
    # A few very slow spans (outliers, slow and very slow counts).
    spikes = rng.random(n) < 0.004
    duration_ms = np.where(spikes, duration_ms * 60 + 6000, duration_ms)
    error = rng.random(n) < np.array([0.02, 0.01, 0.04, 0.1])[op_index]
    has_agent = op_index == 3
    agent = np.where(has_agent, np.array(AGENTS)[rng.integers(0, len(AGENTS), n)], "")
    role = np.array([ROLES.get(a, "") for a in agent])
    model = np.where(has_agent | (op_index == 2), np.array(MODELS)[rng.integers(0, len(MODELS), n)], "")
    provider = np.array([PROVIDERS.get(m, "") for m in model])
    input_tokens = np.where(model != "", rng.integers(50, 2000, n), 0)
    output_tokens = np.where(model != "", rng.integers(10, 800, n), 0)
    price = np.array([{"gpt-4o": 5e-6, "gpt-4o-mini": 3e-7, "claude-3-5-sonnet": 3e-6}.get(m, 0.0) for m in model])
    cost = np.round((input_tokens + 3 * output_tokens) * price, 10)
    quality = np.where(has_agent, np.round(rng.beta(8, 2, n), 4), np.nan)
    tenant = np.array(TENANTS)[rng.integers(0, len(TENANTS), n)]
    user = np.array(USERS)[rng.integers(0, len(USERS), n)]
    # About three spans per correlation id.
    correlation = np.array([f"req-{i // 3:05d}" for i in rng.permutation(n)])
    services = np.array([s for s, _ in OPERATIONS])[op_index]
    operations = np.array([o for _, o in OPERATIONS])[op_index]
    trace_ids = [(seed * 1_000_003 + i).to_bytes(16, "big") for i in range(n)]
    return Dataset(
        start,
        end,
        start_s,
        duration_ms,
        services,
        operations,
        error,
        tenant,
        user,
        agent,
        role,
        model,
        provider,
        input_tokens,
        output_tokens,
        cost,
        quality,
        correlation,
        trace_ids,
    )


def _kv(key: str, value: str | int | float) -> KeyValue:
    if isinstance(value, str):
        return KeyValue(key=key, value=AnyValue(string_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(double_value=value))


def requests(data: Dataset, batch: int = 2000) -> list[ExportTraceServiceRequest]:
    out = []
    n = len(data.start_s)
    for lo in range(0, n, batch):
        request = ExportTraceServiceRequest()
        by_service: dict[str, object] = {}
        for i in range(lo, min(lo + batch, n)):
            service = str(data.service[i])
            ss = by_service.get(service)
            if ss is None:
                rs = request.resource_spans.add()
                rs.resource.attributes.append(_kv("service.name", service))
                ss = rs.scope_spans.add()
                ss.scope.name = "tests.analytics"
                by_service[service] = ss
            span = ss.spans.add()  # type: ignore[attr-defined]
            span.trace_id = data.trace_ids[i]
            span.span_id = (i + 1).to_bytes(8, "big")
            span.name = str(data.operation[i])
            span.kind = 2
            start_ns = round(data.start_s[i] * 1e6) * 1000
            span.start_time_unix_nano = start_ns
            span.end_time_unix_nano = start_ns + round(float(data.duration_ms[i]) * 1000) * 1000
            span.status.code = 2 if data.error[i] else 1
            attrs = [
                _kv("tenant.id", str(data.tenant[i])),
                _kv("user.id", str(data.user[i])),
                _kv("correlation.id", str(data.correlation[i])),
                _kv("http.route", "/x"),
                _kv("queue.depth", int(i % 17)),
            ]
            if data.agent[i]:
                attrs += [_kv("gen_ai.agent.name", str(data.agent[i])), _kv("agent.role", str(data.role[i]))]
                attrs.append(_kv("quality.score", float(data.quality[i])))
            if data.model[i]:
                attrs += [
                    _kv("gen_ai.request.model", str(data.model[i])),
                    _kv("gen_ai.provider.name", str(data.provider[i])),
                    _kv("gen_ai.usage.input_tokens", int(data.input_tokens[i])),
                    _kv("gen_ai.usage.output_tokens", int(data.output_tokens[i])),
                    _kv("cost.usd", float(data.cost[i])),
                ]
            span.attributes.extend(attrs)
        out.append(request)
    return out


def load(dsn: str, data: Dataset) -> None:
    """Through the sink's writer: the spans and their rollups land exactly as in production."""
    # Fixed dates that age: kept forever at the door (retention would otherwise quarantine them one day).
    writer = PostgresWriter(dsn, WriterSettings(retention={}))
    try:
        for request in requests(data):
            for _ in range(100):  # a request spanning many days creates its partitions a few per attempt
                try:
                    result = writer.write(Signal.TRACES, request)
                except RetryableError:
                    continue
                break
            assert result.quarantined == 0, result.quarantine_reasons
    finally:
        writer.close()
