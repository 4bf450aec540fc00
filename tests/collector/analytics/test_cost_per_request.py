"""Cost per request counts a request once, however many services it entered: a trace (its root span) without a
service filter, a request into the service with one. The same figure on the costs page, in the API's JSON and the
CLI's, from raw spans and from the rollups (hourly, daily caches), after the sink's owner backfill moved the priced
call to its tenant and after compaction; head-sampled traces estimate it from their adjusted counts; windows that
read rollups written before migration 0030 (no root count) show no figure rather than a wrong one."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from collector.analytics.ui.format import usd as format_usd
from collector.cli import app
from collector.exporters.postgres import schema
from collector.exporters.postgres.config import RetentionConfig
from collector.exporters.postgres.owners import backfill_owners
from collector.exporters.postgres.retention import apply_retention
from collector.exporters.postgres.rollups import compact_rollups
from collector.exporters.postgres.roots import backfill_roots
from collector.exporters.postgres.writer import PostgresWriter
from processors.pipeline import Signal
from tests.collector.analytics.ui import ui_data
from tests.collector.analytics.ui.ui_data import Spec
from tests.collector.analytics.ui.ui_server import TOKEN, Served, serving, serving_schema

COST = 0.02
TRACE = "7" * 32
DIMENSIONS = ("tenant_id", "agent_name", "model")
OWNER = {"tenant.id": "acme", "correlation.id": "req-1"}
UNOWNED = {"correlation.id": "req-1"}
# ot=th:c: rejection threshold 0xc/0x10 of the range, probability 1/4, so each stored span stands for 4.
SAMPLED = "ot=th:c"
runner = CliRunner()


def _trace(t0: datetime, trace_state: str = "") -> dict[str, Spec]:
    """agent-service's SERVER root calls tools-service, whose SERVER span makes the one priced LLM call; only the
    agent service saw the tenant."""
    llm: dict[str, str | int | float] = {
        **UNOWNED,
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 200,
        "cost.usd": COST,
    }
    ms = timedelta(milliseconds=1)
    return {
        "root": Spec("agent-service", TRACE, 1, None, "POST /v1/ask", 2, t0, 500.0, OWNER, trace_state=trace_state),
        "call": Spec("agent-service", TRACE, 2, 1, "GET /v1/tool", 3, t0 + 5 * ms, 300.0, OWNER),
        "served": Spec("tools-service", TRACE, 3, 2, "GET /v1/tool", 2, t0 + 10 * ms, 280.0, UNOWNED),
        "llm": Spec("tools-service", TRACE, 4, 3, "llm.chat", 3, t0 + 20 * ms, 200.0, llm),
    }


def _t0() -> datetime:
    """Three days ago: a complete day, so 30-day windows read the daily caches; raw windows around it read spans."""
    return (datetime.now(UTC) - timedelta(days=3)).replace(minute=10, second=0, microsecond=0)


def _windows(t0: datetime) -> dict[str, dict[str, str]]:
    raw = {"since": (t0 - timedelta(hours=1)).isoformat(), "until": (t0 + timedelta(hours=1)).isoformat()}
    return {"rollups": {"hours": "720"}, "raw": raw}


def _api(served: Served, **params: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{served.url}/api/v1/costs/per-request", params=params, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def _page_tiles(served: Served, **params: str) -> tuple[str, str]:
    page = httpx.get(f"{served.url}/costs", params=params, auth=("x", TOKEN), timeout=60)
    assert page.status_code == 200, page.text
    tiles = [
        re.search(rf'{label}</span><span class="value"[^>]*>([^<]+)<', page.text) for label in ("Requests", "request")
    ]
    assert tiles[0] and tiles[1]
    return tiles[0].group(1), tiles[1].group(1)


def _overview_requests(served: Served, **params: str) -> str:
    page = httpx.get(f"{served.url}/", params=params, auth=("x", TOKEN), timeout=60)
    assert page.status_code == 200, page.text
    tile = re.search(r'Requests</span><span class="value"[^>]*>([^<]+)<', page.text)
    assert tile
    return tile.group(1)


def _cli(dsn: str, *args: str) -> Any:
    result = runner.invoke(app, ["costs", "--per-request", "--dsn", dsn, *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "json" in args else result.stdout


def _cli_args(params: dict[str, str]) -> list[str]:
    return [a for k, v in params.items() for a in (f"--{k}", v)]


def _assert_per_request(served: Served, dsn: str, t0: datetime, *, tenant_owns_call: bool = True) -> None:
    for source, window in _windows(t0).items():
        assert _page_tiles(served, **window) == ("1", format_usd(COST)), source  # not COST / 2: one request
        whole = _api(served, **window)
        assert (whole["basis"], whole["requests"]) == ("trace", 1), (source, whole)
        assert whole["cost_per_request"] == pytest.approx(COST), (source, whole)
        cli = _cli(dsn, *_cli_args(window), "--format", "json")
        assert cli["requests"] == 1 and cli["cost_per_request"] == pytest.approx(COST), (source, cli)
        tools = _api(served, **window, service="tools-service")
        assert (tools["basis"], tools["requests"]) == ("entry", 1) and tools["cost_per_request"] == pytest.approx(COST)
        agent = _api(served, **window, service="agent-service")
        assert (agent["requests"], agent["cost_per_request"]) == (1, 0.0), (source, agent)  # its own spans cost nothing
        acme = _api(served, **window, tenant="acme")
        assert acme["requests"] == 1 and acme["cost_per_request"] == pytest.approx(COST if tenant_owns_call else 0.0)


def _write(dsn: str, *batches: list[Spec]) -> None:
    writer = PostgresWriter(dsn)
    try:
        for specs in batches:
            result = writer.write(Signal.TRACES, ui_data.otlp_request(specs))
            assert result.quarantined == 0, result.quarantine_reasons
    finally:
        writer.close()


def _nothing(dsn: str) -> None:
    del dsn


def test_a_request_through_two_services_costs_its_call_after_owner_moves_and_compaction(pg_server_dsn: str) -> None:
    t0 = _t0()
    s = _trace(t0)
    with serving(pg_server_dsn, load=_nothing) as (served, dsn):
        # The tools service exports first (stored without an owner, COPY path); the agent's batch repeats the tools
        # service's SERVER span, so it takes the staging path that rolls up in SQL.
        _write(dsn, [s["served"], s["llm"]], [s["root"], s["call"], s["served"]])
        with psycopg.connect(dsn, autocommit=True) as conn:
            counted = conn.execute("SELECT sum(requests), sum(roots) FROM span_rollups_1h").fetchone()
        assert counted == (2, 1)  # the two SERVER spans, one of them the root
        _assert_per_request(served, dsn, t0, tenant_owns_call=False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            adopted, changed = backfill_owners(conn, t0 + timedelta(minutes=30), DIMENSIONS)
            assert adopted == 1 and changed is not None
        _assert_per_request(served, dsn, t0)
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert compact_rollups(conn, changed) is not None
            tenants = conn.execute(
                "SELECT tenant_id, sum(roots), sum(cost_usd)::float8, count(*) FROM span_rollups_1h GROUP BY 1"
            ).fetchall()
        assert sorted(tenants) == [("", 0, 0.0, 1), ("acme", 1, pytest.approx(COST), 3)]  # one row per key
        _assert_per_request(served, dsn, t0)
        with psycopg.connect(dsn, autocommit=True) as conn:
            cached = conn.execute(
                "SELECT (SELECT sum(roots) FROM analytics_rollups_1d),"
                " (SELECT sum(roots) FROM analytics_rollups_1d_ops)"
            ).fetchone()
        assert cached == (1, 1)  # the 30-day window read the daily caches


def test_head_sampled_traces_estimate_requests_from_their_adjusted_counts(pg_server_dsn: str) -> None:
    t0 = _t0()
    s = _trace(t0, trace_state=SAMPLED)
    with serving(pg_server_dsn, load=_nothing) as (served, dsn):
        # The root alone first (rolled up in Python), then the whole trace again (in SQL, repeating the root).
        _write(dsn, [s["root"], s["call"]], list(s.values()))
        with psycopg.connect(dsn, autocommit=True) as conn:
            unsampled = conn.execute("SELECT sum(requests), sum(roots) FROM span_rollups_unsampled_1h").fetchone()
        assert unsampled == (6.0, 3.0)  # the two SERVER spans and the root, each standing for 3 more
        for source, window in _windows(t0).items():
            whole = _api(served, **window)
            assert (whole["requests"], whole["estimated"]) == (4, True), (source, whole)
            assert whole["cost_usd"] == pytest.approx(4 * COST) and whole["cost_per_request"] == pytest.approx(COST)
            tools = _api(served, **window, service="tools-service")
            assert tools["requests"] == 4 and tools["cost_per_request"] == pytest.approx(COST), (source, tools)
            assert _page_tiles(served, **window)[1] == format_usd(COST), source


def test_windows_over_rollups_written_before_roots_were_counted_show_no_figure(pg_server_dsn: str) -> None:
    t0 = _t0()
    s = _trace(t0)
    with serving(pg_server_dsn, load=_nothing) as (served, dsn):
        _write(dsn, list(s.values()))
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE span_rollups_1h SET roots = NULL")  # as migration 0030 leaves older rows
        # A later batch in the same hour and keys: compaction merges counted and uncounted rows into uncounted ones.
        later = {k: Spec(**{**v.__dict__, "trace_id": "8" * 32}) for k, v in s.items()}
        _write(dsn, list(later.values()))
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert compact_rollups(conn, t0 - timedelta(hours=1)) is not None
            rows = conn.execute("SELECT count(*), count(roots) FROM span_rollups_1h").fetchone()
        assert rows == (4, 0)
        rollups, raw = _windows(t0).values()
        unknown = _api(served, **rollups)
        assert (unknown["requests"], unknown["cost_per_request"]) == (None, None)
        assert unknown["cost_usd"] == pytest.approx(2 * COST)
        assert _api(served, **rollups, service="tools-service")["requests"] is None  # 0024's requests: same rows
        assert _page_tiles(served, **rollups) == ("\u2013", "\u2013")
        assert _overview_requests(served, **rollups) == "\u2013"
        assert "requests unknown" in _cli(dsn, *_cli_args(rollups))
        with psycopg.connect(dsn, autocommit=True) as conn:
            cached = conn.execute("SELECT count(*), count(roots) FROM analytics_rollups_1d_ops").fetchone()
        assert cached is not None and cached[0] > 0 and cached[1] == 0  # the caches keep them uncounted
        counted = _api(served, **raw)  # raw spans always know their parents
        assert counted["requests"] == 2 and counted["cost_per_request"] == pytest.approx(COST)


def _migrate_before_0030(conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    """``conn``'s schema migrated as a sink before 0030 left it: the shipped migrations up to 0029 only."""
    package = resources.files("collector.exporters.postgres").joinpath("migrations")
    for f in package.iterdir():
        if f.name.endswith(".sql") and int(f.name[:4]) < 30:
            shutil.copyfile(str(f), tmp_path / f.name)
    schema.migrate(conn, tmp_path)


def test_migration_0030_leaves_older_rollup_rows_uncounted(pg_schemas: Any, tmp_path: Path) -> None:
    dsn = pg_schemas.create(migrate=False)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            _migrate_before_0030(conn, tmp_path)
            conn.execute(
                "INSERT INTO span_rollups_1h (bucket_start, service_name, operation, status_code, count, errors,"
                " duration_sum_ms, duration_min_ms, duration_max_ms, latency_hist, requests)"
                " VALUES (now(), 'svc', 'op', 0, 3, 0, 3, 1, 1, '{}', 2)"
            )
            applied = schema.migrate(conn)
            assert [m.version for m in applied] == [30]
            assert conn.execute("SELECT requests, roots FROM span_rollups_1h").fetchall() == [(2, None)]
    finally:
        pg_schemas.drop(dsn)


def _schema_name(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_schema()").fetchone()
    assert row is not None
    return str(row[0])


def _copy_as_before_0030(conn: psycopg.Connection[Any], new: str) -> None:
    """Into ``conn``'s schema, what a sink before 0030 stored for the spans of the schema ``new``: the same spans and
    rollup rows, without the columns 0030 added (the same statements wrote them, with the same sums)."""
    old = _schema_name(conn)
    for start, end in conn.execute(
        f"SELECT range_start, range_end FROM {new}.otel_partitions WHERE parent = 'spans'"
    ).fetchall():
        conn.execute("SELECT otel_ensure_partition('spans', %s, %s)", (start, end - start))
    conn.execute(f"INSERT INTO {old}.spans SELECT * FROM {new}.spans")
    for table in ("span_rollups_1m", "span_rollups_1h", "span_rollups_unsampled_1h"):
        columns = ", ".join(
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                (old, table),
            ).fetchall()
        )
        conn.execute(f"INSERT INTO {old}.{table} ({columns}) SELECT {columns} FROM {new}.{table}")


def _retraced(specs: dict[str, Spec], trace_id: str, shift: timedelta, trace_state: str = "") -> list[Spec]:
    return [
        Spec(**{**s.__dict__, "trace_id": trace_id, "start": s.start + shift, "trace_state": trace_state})
        for s in specs.values()
    ]


def test_the_sink_counts_the_roots_of_rollups_written_before_0030_where_raw_spans_remain(
    pg_schemas: Any, tmp_path: Path
) -> None:
    t0 = _t0()
    s = _trace(t0)
    minute = timedelta(minutes=1)
    sampled = _retraced(s, "9" * 32, minute, SAMPLED)  # one stored trace standing for 4
    dropped = _retraced(s, "8" * 32, -timedelta(days=3))  # six days ago: retention drops its raw spans below
    new, old = pg_schemas.create(), pg_schemas.create(migrate=False)
    try:
        with psycopg.connect(old, autocommit=True) as conn:
            _migrate_before_0030(conn, tmp_path)
        _write(new, list(s.values()), sampled, dropped)  # three batches: several rows per hourly key
        with psycopg.connect(new) as conn:
            new_schema = _schema_name(conn)
        with psycopg.connect(old, autocommit=True) as conn:
            _copy_as_before_0030(conn, new_schema)
            assert [m.version for m in schema.migrate(conn)] == [30]
            apply_retention(conn, RetentionConfig(traces="5d"))
        # After the upgrade, a sink counts roots again: a fourth trace in the same hour and keys.
        _write(old, _retraced(s, "6" * 32, 2 * minute))
        kept = {"since": (t0 - timedelta(days=1)).isoformat(), "until": datetime.now(UTC).isoformat()}
        gone = {"since": (t0 - timedelta(days=4)).isoformat(), "until": (t0 - timedelta(days=2)).isoformat()}
        with serving_schema(old) as served:
            assert _api(served, **kept)["requests"] is None  # the daily caches are built uncounted
            assert _overview_requests(served, **kept) == "\u2013"  # so are the per-operation ones
            with psycopg.connect(old, autocommit=True) as conn:
                conn.execute("SET TIME ZONE 'Asia/Kolkata'")  # a session not in UTC, whose hours start at :30 UTC
                passes = [backfill_roots(conn, DIMENSIONS)]
                while passes[-1].before is not None:
                    passes.append(backfill_roots(conn, DIMENSIONS, passes[-1].before, hours=1))
                uncounted = conn.execute(
                    "SELECT bucket_start, count(*) FROM span_rollups_1h WHERE roots IS NULL GROUP BY 1"
                ).fetchall()
                unsampled = conn.execute("SELECT sum(requests), sum(roots) FROM span_rollups_unsampled_1h").fetchone()
            assert not any(p.busy for p in passes) and sum(p.filled for p in passes) > 0
            assert [h for h, _ in uncounted] == [t0.replace(minute=0) - timedelta(days=3)]  # only the dropped hour
            assert unsampled == (6.0, 3.0)  # weighted like the write path: 2 requests and 1 root, 3 more each
            whole = _api(served, **kept)
            assert (whole["basis"], whole["requests"], whole["estimated"]) == ("trace", 6, True), whole
            assert whole["cost_per_request"] == pytest.approx(COST), whole
            tools = _api(served, **kept, service="tools-service")
            assert (tools["requests"], tools["cost_per_request"]) == (6, pytest.approx(COST)), tools
            assert _page_tiles(served, **kept) == ("6", format_usd(COST))
            assert _overview_requests(served, **kept) == "3"  # the overview counts the traces stored
            cli = _cli(old, *_cli_args(kept), "--format", "json")
            assert (cli["requests"], cli["cost_per_request"]) == (6, pytest.approx(COST)), cli
            for window in (gone, {"hours": "720"}):  # a bucket whose raw spans are gone stays uncounted
                assert _api(served, **window)["requests"] is None, window
                assert _page_tiles(served, **window) == ("\u2013", "\u2013"), window
        with psycopg.connect(old, autocommit=True) as conn:
            cached = conn.execute(
                "SELECT sum(roots) FROM analytics_rollups_1d WHERE bucket_start = %s",
                (t0.replace(hour=0, minute=0),),
            ).fetchone()
        assert cached == (3,)  # rebuilt from the counted rows: three stored roots (the sampled one unweighted)
    finally:
        pg_schemas.drop(new)
        pg_schemas.drop(old)
