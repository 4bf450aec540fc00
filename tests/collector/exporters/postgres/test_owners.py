"""Every cost has an owner: a priced span of a service that never saw the request's tenant (a tools service, a Node
or Go service in the same trace) takes its trace's tenant, user, feature and correlation id in the sink, whether the
trace's owner was stored before it (at write time) or after it (the backfill the sink runs before compacting), and
the rollups follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from opentelemetry import trace

from collector.analytics.queries import Analytics
from collector.analytics.window import NO_FILTERS, TimeWindow
from collector.exporters.postgres.owners import backfill_owners
from collector.exporters.postgres.rollups import compact_rollups
from collector.exporters.postgres.writer import PostgresWriter
from processors.pipeline import Signal
from tests.support.sink_otlp import make_spans, traces_request

DIMENSIONS = ("tenant_id", "agent_name", "model")
OWNER = {"tenant.id": "acme", "user.id": "u-7", "feature.name": "search", "correlation.id": "req-1"}
COST = 0.0125


def _request() -> tuple[Any, Any]:
    """One request: the agent service's server span (with the owner) and, in the same trace, the tools service's
    priced call (without): returned as two OTLP requests, one per service."""
    holder: dict[str, Any] = {}

    def agent(tracer: Any) -> None:
        with tracer.start_as_current_span("POST /v1/query", kind=trace.SpanKind.SERVER, attributes=OWNER) as root:
            holder["context"] = root.get_span_context()

    def tools(tracer: Any) -> None:
        parent = trace.set_span_in_context(trace.NonRecordingSpan(holder["context"]))
        attributes = {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 500, "cost.usd": COST}
        tracer.start_span("chat gpt-4o", context=parent, kind=trace.SpanKind.CLIENT, attributes=attributes).end()

    agent_request = traces_request(make_spans(agent, service="agent-service"))
    return agent_request, traces_request(make_spans(tools, service="tools-service"))


def _write(dsn: str, request: Any) -> None:
    writer = PostgresWriter(dsn)
    try:
        writer.write(Signal.TRACES, request)
    finally:
        writer.close()


def _by_tenant(dsn: str, hours: float) -> dict[str, tuple[int, float]]:
    now = datetime.now(UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = Analytics(conn).costs(TimeWindow(now - timedelta(hours=hours), now + timedelta(minutes=5)), by="tenant")
    return {r.key: (r.calls, r.cost_usd) for r in rows}


def _assert_by_tenant(dsn: str, hours: float, expected: dict[str, tuple[int, float]]) -> None:
    """Calls and cost per tenant as expected, the cost to float precision."""
    found = _by_tenant(dsn, hours)
    assert found.keys() == expected.keys(), found
    for tenant, (calls, cost) in expected.items():
        assert found[tenant][0] == calls and found[tenant][1] == pytest.approx(cost), (tenant, found)


def _tools_span(dsn: str) -> tuple[Any, ...]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT tenant_id, user_id, feature, correlation_id FROM spans WHERE service_name = 'tools-service'"
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_owner_stored_first_is_taken_at_write_time(pg_dsn: str) -> None:
    agent, tools = _request()
    _write(pg_dsn, agent)
    _write(pg_dsn, tools)  # another batch, another writer: found among the stored spans
    assert _tools_span(pg_dsn) == ("acme", "u-7", "search", "req-1")
    for hours in (1, 48):  # raw spans, then rollups
        _assert_by_tenant(pg_dsn, hours, {"acme": (2, COST)})


def test_owner_stored_after_is_given_by_the_backfill_and_rollups_move(pg_dsn: str) -> None:
    agent, tools = _request()
    _write(pg_dsn, tools)
    _assert_by_tenant(pg_dsn, 1, {"(none)": (1, COST)})
    _write(pg_dsn, agent)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        adopted, changed = backfill_owners(conn, datetime.now(UTC), DIMENSIONS)
        assert adopted == 1 and changed is not None
        assert backfill_owners(conn, datetime.now(UTC), DIMENSIONS) == (0, None)  # nothing left to give
    assert _tools_span(pg_dsn) == ("acme", "u-7", "search", "req-1")
    _assert_by_tenant(pg_dsn, 1, {"acme": (2, COST)})
    _assert_by_tenant(pg_dsn, 48, {"acme": (2, COST)})  # the rollups moved too
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        compact_rollups(conn, changed)
        totals = conn.execute(
            "SELECT tenant_id, sum(count), sum(cost_usd), otel_hist_sum(latency_hist) FROM span_rollups_1h GROUP BY 1"
            " ORDER BY 1"
        ).fetchall()
    _assert_by_tenant(pg_dsn, 48, {"acme": (2, COST)})
    (acme,) = totals  # the key the span left sums to no span: compaction deletes it
    assert acme[0] == "acme" and acme[1] == 2 and acme[2] == Decimal(repr(COST))


def test_a_span_of_another_trace_takes_the_owner_of_its_correlation_id(pg_dsn: str) -> None:
    agent, _ = _request()

    def worker(tracer: Any) -> None:  # a queue consumer: a new trace, the correlation id carried in the message
        attributes = {"correlation.id": "req-1", "gen_ai.request.model": "gpt-4o", "cost.usd": COST}
        tracer.start_span("chat gpt-4o", attributes=attributes).end()

    _write(pg_dsn, agent)
    _write(pg_dsn, traces_request(make_spans(worker, service="worker")))
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT tenant_id, user_id, feature FROM spans WHERE service_name = 'worker'").fetchone()
    assert row == ("acme", "u-7", "search")


def _request_at(start: datetime) -> tuple[Any, Any]:
    """As ``_request``, the owner starting at ``start`` and the priced call a minute later; with them, the priced call
    of another request of the same owner in the same hour."""
    holder: dict[str, Any] = {}
    ns = int(start.timestamp() * 1e9)

    def agent(tracer: Any) -> None:
        root = tracer.start_span("POST /v1/query", kind=trace.SpanKind.SERVER, attributes=OWNER, start_time=ns)
        holder["context"] = root.get_span_context()
        root.end(end_time=ns + 120 * 10**9)

    def tools(tracer: Any) -> None:
        parent = trace.set_span_in_context(trace.NonRecordingSpan(holder["context"]))
        attributes = {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 500, "cost.usd": COST}
        call = tracer.start_span(
            "chat gpt-4o", context=parent, kind=trace.SpanKind.CLIENT, attributes=attributes, start_time=ns + 60 * 10**9
        )
        call.end(end_time=ns + 61 * 10**9)
        # Another request's call of the same tenant, in the same hour: the owner's rollup key exists already.
        other = tracer.start_span(
            "chat gpt-4o", kind=trace.SpanKind.CLIENT, attributes={**attributes, **OWNER}, start_time=ns + 90 * 10**9
        )
        other.end(end_time=ns + 91 * 10**9)

    agent_request = traces_request(make_spans(agent, service="agent-service"))
    return agent_request, traces_request(make_spans(tools, service="tools-service"))


def test_an_owner_moved_into_a_cached_day_reaches_the_cache_after_compaction(pg_dsn: str) -> None:
    """A complete day read through the daily cache, then one of its spans given its owner and the rollups compacted
    (the move changes neither the day's span count nor its number of rollup rows): the next read charges the owner."""
    day = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    owner_start = day + timedelta(hours=23, minutes=30)
    agent, tools = _request_at(owner_start)
    _write(pg_dsn, tools)
    _write(pg_dsn, agent)  # the owner stored after its orphan: only the backfill moves it
    window = TimeWindow(day - timedelta(hours=12), day + timedelta(days=1, hours=12))

    def by_tenant() -> dict[str, tuple[int, float]]:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            return {r.key: (r.calls, r.cost_usd) for r in Analytics(conn).costs(window, by="tenant")}

    def assert_costs(expected: dict[str, tuple[int, float]]) -> None:
        found = by_tenant()
        assert found.keys() == expected.keys(), found
        for tenant, (calls, cost) in expected.items():
            assert found[tenant][0] == calls and found[tenant][1] == pytest.approx(cost), (tenant, found)

    assert_costs({"(none)": (1, COST), "acme": (2, COST)})
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        cached = conn.execute("SELECT day FROM analytics_rollup_days").fetchall()
        assert [r[0] for r in cached] == [day]  # the day is read from the cache
        adopted, changed = backfill_owners(conn, owner_start + timedelta(minutes=30), DIMENSIONS)
        assert adopted == 1 and changed is not None
        compact_rollups(conn, changed)
    assert_costs({"acme": (3, 2 * COST)})


def _tenant_reports(dsn: str) -> tuple[set[str], set[str]]:
    """The tenants of the per-tenant reports over the rollups other than costs: totals per tenant (the series'
    legend) and cost per tenant (budgets' dimension)."""
    now = datetime.now(UTC)
    window = TimeWindow(now - timedelta(hours=48), now + timedelta(minutes=5))
    with psycopg.connect(dsn, autocommit=True) as conn:
        analytics = Analytics(conn)
        keyed = analytics.keyed_series(window, NO_FILTERS, "tenant", latency=True, per_bucket=False)
        by_dimension = analytics.cost_by_dimension("tenant_id", window.rollup_aligned().start)
    return {r["key"] for r in keyed.rows}, set(by_dimension)


def test_the_key_an_owner_move_emptied_is_in_no_report(pg_dsn: str) -> None:
    agent, tools = _request()
    _write(pg_dsn, tools)
    assert _tenant_reports(pg_dsn) == (
        {
            "",
        },
        {""},
    )
    _write(pg_dsn, agent)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        _, changed = backfill_owners(conn, datetime.now(UTC), DIMENSIONS)
    assert changed is not None
    assert _tenant_reports(pg_dsn) == ({"acme"}, {"acme"})  # before compaction: rows that sum to no span
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        compact_rollups(conn, changed)
        left = conn.execute(
            "SELECT (SELECT count(*) FROM span_rollups_1m WHERE tenant_id = ''),"
            " (SELECT count(*) FROM span_rollups_1h WHERE tenant_id = '')"
        ).fetchone()
    assert left == (0, 0)
    assert _tenant_reports(pg_dsn) == ({"acme"}, {"acme"})
