"""One call, one price across batches and processes: two spans of one LLM response (same gen_ai.response.id), each
priced by a different process, are stored with one holding the cost and the other folded into it, whatever order
they arrive in, even when two writers store them at the same moment; ``costs`` (CLI JSON and API) says how many were
folded."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from collector.analytics.api import AnalyticsAPI
from collector.analytics.config import AnalyticsConfig
from collector.analytics.queries import Analytics
from collector.analytics.window import TimeWindow
from collector.cli import app as cli
from collector.exporters.postgres.rollups import compact_rollups
from collector.exporters.postgres.writer import PostgresWriter
from processors.pipeline import Signal
from tests.collector.analytics.served import serve
from tests.support.sink_otlp import make_spans, traces_request

COST = 0.0042


def _calls(responses: range, source: str, trace_salt: int = 0) -> Any:
    """One span per response, as one process (``source``: an SDK's tracing or an instrumentation) priced it."""

    def build(tracer: Any) -> None:
        for n in responses:
            span = tracer.start_span(f"{source} {n}")
            span.set_attributes(
                {
                    "gen_ai.request.model": "claude-sonnet-4-20250514",
                    "gen_ai.response.id": f"msg_{n:04d}",
                    "gen_ai.usage.input_tokens": 1000,
                    "gen_ai.usage.output_tokens": 100,
                    "cost.usd": COST,
                    "tenant.id": "acme",
                }
            )
            span.end()

    return traces_request(make_spans(build, service=source))


def _write(dsn: str, request: Any) -> None:
    writer = PostgresWriter(dsn)  # its own connection: another process's sink
    try:
        writer.write(Signal.TRACES, request)
    finally:
        writer.close()


def _stored(dsn: str) -> tuple[Decimal, int, int, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT sum(cost_usd), sum(input_tokens), count(*) FILTER (WHERE attributes ? 'cost.duplicate_of'),"
            " count(*) FILTER (WHERE attributes ? 'cost.duplicate_of'"
            "  AND (attributes ->> 'gen_ai.usage.input_tokens')::int = 1000 AND cost_usd IS NULL)"
            " FROM spans"
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2], row[3]


@pytest.mark.parametrize("order", ["sdk first", "instrumentation first"])
def test_two_processes_one_price_either_order(pg_dsn: str, order: str) -> None:
    first, second = _calls(range(10), "sdk-tracing"), _calls(range(10), "instrumentation")
    if order != "sdk first":
        first, second = second, first
    _write(pg_dsn, first)
    _write(pg_dsn, second)
    _write(pg_dsn, second)  # redelivered: nothing changes, the holders stay holders
    cost, tokens, folded, kept_tokens = _stored(pg_dsn)
    assert cost == 10 * Decimal(repr(COST)) and tokens == 10 * 1000
    assert folded == kept_tokens == 10  # the folded spans keep their counts in attributes only
    with psycopg.connect(pg_dsn) as conn:
        holders = conn.execute("SELECT DISTINCT service_name FROM spans WHERE cost_usd IS NOT NULL").fetchall()
    assert holders == [("sdk-tracing" if order == "sdk first" else "instrumentation",)]

    result = CliRunner().invoke(cli, ["costs", "--dsn", pg_dsn, "--hours", "1", "--by", "tenant", "-f", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["key"] == "acme" and row["folded_spans"] == 10 and row["calls"] == 20
    assert Decimal(repr(row["cost_usd"])) == 10 * Decimal(repr(COST))
    with serve(AnalyticsAPI(lambda: pg_dsn, AnalyticsConfig())) as client:
        (item,) = client.get("/costs", params={"hours": 1, "by": "model"}).json()["items"]
    assert item["key"] == "claude-sonnet-4-20250514" and item["folded_spans"] == 10


def _race(dsn: str, requests: list[Any]) -> None:
    """Each request written by its own writer (connected first), all started together."""
    start = threading.Barrier(len(requests))
    errors: list[BaseException] = []

    def run(request: Any) -> None:
        writer = PostgresWriter(dsn)
        try:
            writer._connection()  # connected (and staging tables made) before the race
            start.wait(timeout=30)
            writer.write(Signal.TRACES, request)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            writer.close()

    threads = [threading.Thread(target=run, args=(r,)) for r in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)


def test_two_writers_at_once_price_each_response_once(pg_dsn: str) -> None:
    """Both writers store spans of the same 200 responses in one transaction each, started together: the primary key
    of the claims serialises them, so every response is priced exactly once."""
    _race(pg_dsn, [_calls(range(200), "sdk-tracing"), _calls(range(200), "instrumentation")])
    cost, tokens, folded, _ = _stored(pg_dsn)
    assert cost == 200 * Decimal(repr(COST)) and tokens == 200 * 1000 and folded == 200
    with psycopg.connect(pg_dsn) as conn:
        per_response = conn.execute(
            "SELECT attributes ->> 'gen_ai.response.id', count(*) FILTER (WHERE cost_usd IS NOT NULL) FROM spans"
            " GROUP BY 1 HAVING count(*) FILTER (WHERE cost_usd IS NOT NULL) <> 1"
        ).fetchall()
        rollup_cost = conn.execute("SELECT sum(cost_usd) FROM span_rollups_1h").fetchone()
    assert per_response == [] and rollup_cost == (200 * Decimal(repr(COST)),)


def _unpriced_calls(responses: range, source: str) -> Any:
    """One span per response with tokens and no cost, as the Anthropic SDK's own tracing of a call that is not
    streamed reports it (output tokens only, so nothing prices it)."""

    def build(tracer: Any) -> None:
        for n in responses:
            attributes = {
                "gen_ai.request.model": "claude-sonnet-4-20250514",
                "gen_ai.response.id": f"msg_{n:04d}",
                "gen_ai.usage.output_tokens": 100,
                "tenant.id": "acme",
            }
            tracer.start_span(f"{source} {n}", attributes=attributes).end()

    return traces_request(make_spans(build, service=source))


@pytest.mark.parametrize("order", ["unpriced first", "priced first"])
def test_an_unpriced_span_of_a_priced_call_is_folded_either_order(pg_dsn: str, order: str) -> None:
    """Responses 0-9 seen unpriced by one process and priced by another, in either order (the unpriced first: the
    priced span takes the call over and the stored unpriced span is folded, its rollup counts moved); 10-12 only
    unpriced: they keep their tokens. Tokens in spans and rollups describe the 13 calls made."""
    unpriced, priced = _unpriced_calls(range(13), "sdk-tracing"), _calls(range(10), "instrumentation")
    for request in [unpriced, priced] if order == "unpriced first" else [priced, unpriced]:
        _write(pg_dsn, request)
    _write(pg_dsn, unpriced)  # redelivered: nothing changes
    with psycopg.connect(pg_dsn) as conn:
        spans = conn.execute(
            "SELECT sum(cost_usd), sum(input_tokens), sum(output_tokens),"
            " count(*) FILTER (WHERE attributes ? 'cost.duplicate_of'"
            "  AND (attributes ->> 'gen_ai.usage.output_tokens')::int = 100 AND output_tokens IS NULL)"
            " FROM spans"
        ).fetchone()
        rollups = [
            conn.execute(f"SELECT sum(count), sum(input_tokens), sum(output_tokens) FROM {table}").fetchone()
            for table in ("span_rollups_1m", "span_rollups_1h")
        ]
    assert spans == (10 * Decimal(repr(COST)), 10 * 1000, 13 * 100, 10)
    assert rollups == [(23, 10 * 1000, 13 * 100)] * 2
    result = CliRunner().invoke(cli, ["costs", "--dsn", pg_dsn, "--hours", "1", "--by", "tenant", "-f", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert (row["calls"], row["input_tokens"], row["output_tokens"], row["folded_spans"]) == (23, 10000, 1300, 10)


def test_a_call_taken_over_across_midnight_leaves_no_stale_cached_day(pg_dsn: str) -> None:
    """The unpriced span of a call starts just before midnight, its priced span just after: when the priced span
    arrives, the day of the unpriced one is already in the analytics daily cache, and loses only tokens (no span);
    once compacted, its rollup rows are as many as before."""
    midnight = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    call = {"gen_ai.request.model": "claude-sonnet-4-20250514", "gen_ai.response.id": "msg_midnight"}

    def span(source: str, start: datetime, attributes: dict[str, Any]) -> Any:
        ns = int(start.timestamp() * 1e9)

        def build(tracer: Any) -> None:
            tracer.start_span(f"{source} call", attributes={**call, **attributes}, start_time=ns).end(ns + 10**6)

        return traces_request(make_spans(build, service=source))

    window = TimeWindow(midnight - timedelta(days=1, hours=6), midnight + timedelta(days=1, hours=6))

    def tokens() -> tuple[int, int]:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            rows = Analytics(conn).costs(window, by="model")
        return sum(r.input_tokens for r in rows), sum(r.output_tokens for r in rows)

    _write(pg_dsn, span("sdk-tracing", midnight - timedelta(seconds=1), {"gen_ai.usage.output_tokens": 100}))
    assert tokens() == (0, 100)
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM analytics_rollup_days").fetchone() == (1,)  # the day is cached
    priced = {"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100, "cost.usd": COST}
    _write(pg_dsn, span("instrumentation", midnight + timedelta(seconds=1), priced))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert compact_rollups(conn, midnight - timedelta(days=1)) is not None
    assert tokens() == (1000, 100)


def test_an_unpriced_and_a_priced_writer_at_once_count_each_call_once(pg_dsn: str) -> None:
    """One writer stores 200 responses unpriced, another the same 200 priced, at the same moment: whichever claims a
    response first, its tokens are counted once (the priced span's), in spans and rollups."""
    _race(pg_dsn, [_unpriced_calls(range(200), "sdk-tracing"), _calls(range(200), "instrumentation")])
    with psycopg.connect(pg_dsn) as conn:
        spans = conn.execute(
            "SELECT sum(cost_usd), sum(input_tokens), sum(output_tokens),"
            " count(*) FILTER (WHERE attributes ? 'cost.duplicate_of') FROM spans"
        ).fetchone()
        rollups = conn.execute(
            "SELECT sum(count), sum(input_tokens), sum(output_tokens) FROM span_rollups_1h"
        ).fetchone()
        holders = conn.execute("SELECT count(*) FILTER (WHERE priced), count(*) FROM llm_calls").fetchone()
    assert spans == (200 * Decimal(repr(COST)), 200 * 1000, 200 * 100, 200)
    assert rollups == (400, 200 * 1000, 200 * 100)
    assert holders == (200, 200)
