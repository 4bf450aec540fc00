"""The web UI's speed: a 30-day overview over a large database, and rendering a 5,000-span trace in Chromium.

Loads N spans (default 10,000,000, the issue's figure) over 30 days with ``analytics_latency.load`` (same
generator and rollups) plus a 5,000-span and a 10-span trace, serves the UI with the real app
(``ui.analytics_app``) on a loopback port, and prints, as medians of ``--repeat`` runs:

- which tables the 30-day overview's queries read (EXPLAIN of every statement it runs: raw ``spans`` must not be
  among them);
- the 30-day overview page (per-service requests/s, error rate, p50/p95/p99 series, cost series, table, alerts,
  budgets), next to the API's 30-day per-service performance (``/api/v1/performance``) on the same data as the
  same-run baseline; the 30-day costs page;
- the trace page of a 5,000-span trace in Chromium (navigation start to the rows in view drawn and a span
  selected), next
  to a 10-span trace as the baseline (needs Debian's chromium and the ``playwright`` package; skipped otherwise).

    nice -n 10 .venv/bin/python benchmarks/ui_latency.py [--spans 10000000] [--db-dir DIR] [--dsn URL]

The loaded database is kept (an embedded PostgreSQL in ``--db-dir``, default ``~/.cache/otel-metrics/bench-db``;
as root ``/var/tmp/otel-metrics-bench-db``, since the embedded server runs as its own user and cannot enter
root's home), one schema per span count, so a rerun only times. Migrations are applied on every run; ``--reload``
loads again. ``--dsn URL`` uses that PostgreSQL instead (the schema is kept there too).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import analytics_latency  # noqa: E402

from collector.analytics.alerts import AlertStore  # noqa: E402
from collector.analytics.budgets import BudgetStore  # noqa: E402
from collector.analytics.config import AlertsConfig, AnalyticsConfig  # noqa: E402
from collector.analytics.queries import Analytics  # noqa: E402
from collector.analytics.ui import analytics_app, views  # noqa: E402
from collector.analytics.window import NO_FILTERS, TimeWindow  # noqa: E402
from collector.confighttp import HTTPServer  # noqa: E402
from collector.exporters.postgres import schema  # noqa: E402
from tests.collector.analytics.ui import ui_data  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _Serving:
    """The UI app on a free loopback port, on an event loop in its own thread."""

    def __init__(self, dsn: str) -> None:
        config = AnalyticsConfig(endpoint="127.0.0.1:0", dsn=dsn, alerts=AlertsConfig(enabled=False))
        self.api = analytics_app(lambda: dsn, config)
        self.server = HTTPServer(self.api.app, config.endpoint, name="ui-bench")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(timeout=60)
        self.url = f"http://127.0.0.1:{self.server.port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(timeout=60)
        self.api.pool.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)


def _median_ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm up
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(samples)


def _get(url: str) -> None:
    response = httpx.get(url, timeout=300)
    response.raise_for_status()


def _overview(base: str, since: str, until: str, repeat: int) -> None:
    window = f"since={quote(since)}&until={quote(until)}"
    started = time.perf_counter()
    _get(f"{base}/?{window}")
    first = (time.perf_counter() - started) * 1000
    print(f"first 30-day overview (may build the daily rollup cache): {first:.0f} ms")
    page = _median_ms(lambda: _get(f"{base}/?{window}"), repeat)
    api = _median_ms(lambda: _get(f"{base}/api/v1/performance?{window}&group_by=service"), repeat)
    print(f"30-day overview page                {page:>9.1f} ms   (issue's target: < 300 ms on 10 M spans)")
    print(f"  baseline: 30-day API performance  {api:>9.1f} ms   ratio {page / api:.2f}")
    costs = _median_ms(lambda: _get(f"{base}/costs?{window}"), repeat)
    print(f"30-day costs page                   {costs:>9.1f} ms   ratio {costs / api:.2f} to the baseline")


class _Recording(psycopg.Cursor[Any]):
    """Keeps every statement the overview runs, to EXPLAIN them afterwards."""

    seen: list[tuple[Any, Any]] = []

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        _Recording.seen.append((query, params))
        return super().execute(query, params, **kwargs)


def _reads(plan: Any) -> set[tuple[str, str, str]]:
    """(table, scan node, index) of every scan in a plan; spans partitions as "spans"."""
    found = set()
    if "Relation Name" in plan:
        table = plan["Relation Name"]
        table = "spans" if table == "spans" or table.startswith("spans_p") else table
        # One name for an index of every partition: spans_p20261102_cost_usd_idx -> (partition)_cost_usd_idx
        index = re.sub(r"^spans_p[0-9_]+?_(?=[a-z])", "(partition)_", plan.get("Index Name", ""))
        found.add((table, plan["Node Type"], index))
    for child in plan.get("Plans", []):
        found |= _reads(child)
    return found


def _explained(dsn: str, run: Callable[[Analytics], Any]) -> tuple[int, set[tuple[str, str, str]]]:
    """EXPLAIN every SELECT that ``run`` executes: how many statements, and what they scan."""
    with psycopg.connect(dsn, autocommit=True, cursor_factory=_Recording) as conn:
        _Recording.seen.clear()
        run(Analytics(conn))
        statements = list(_Recording.seen)
        read: set[tuple[str, str, str]] = set()
        with psycopg.ClientCursor(conn) as cur:
            for query, params in statements:
                text = query.as_string(conn) if isinstance(query, sql.Composable) else str(query)
                if not text.lstrip().upper().startswith(("SELECT", "WITH")):
                    continue
                cur.execute(f"EXPLAIN (FORMAT JSON) {text}", params)
                row = cur.fetchone()
                read |= _reads(row[0][0]["Plan"]) if row else set()
    return len(statements), read


def _overview_reads(a: Analytics, window: TimeWindow) -> None:
    """What the overview page reads (pages.UIPages._overview)."""
    a.services()
    views.service_series(a, window, NO_FILTERS)
    AlertStore(a.conn).list("open", limit=10)
    AlertStore(a.conn).counts()
    BudgetStore(a.conn).status()


def _explain(dsn: str, window: TimeWindow) -> None:
    """Which tables a 30-day overview reads (raw spans must not be among them), and how the costs page reads raw
    spans (index scans of the priced and unpriced calls, never a scan of every span)."""
    count, read = _explained(dsn, lambda a: _overview_reads(a, window))
    raw = sorted(f"{node} {index}".strip() for table, node, index in read if table == "spans")
    print(f"30-day overview: {count} statements; tables read: {', '.join(sorted({t for t, _, _ in read}))}")
    print(f"  raw spans read by the overview: {', '.join(raw) if raw else 'none'}")
    count, read = _explained(dsn, lambda a: views.cost_view(a, window, NO_FILTERS, "model"))
    raw = sorted({f"{node} {index}".strip() for table, node, index in read if table == "spans"})
    print(f"30-day costs page: {count} statements; raw spans read by: {', '.join(raw) if raw else 'none'}")


def _render_ms(page: Any, url: str, rows: int) -> float:
    page.goto(url)
    page.wait_for_function(
        "n => document.readyState === 'complete'"
        " && document.getElementById('span-rows').getAttribute('data-spans') === String(n)"
        " && document.querySelector('#span-rows .row[aria-selected=\"true\"]') !== null",
        arg=rows,
    )
    # Navigation start to now: server render, transfer, parse, layout and the page's script.
    return float(page.evaluate("performance.now()"))


def _trace_render(base: str, traces: tuple[str, str], repeat: int) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("trace render: skipped (the playwright package is not installed)")
        return
    if not Path(CHROMIUM).exists():
        print(f"trace render: skipped ({CHROMIUM} is absent; apt-get install chromium)")
        return
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1360, "height": 860})
        timings = {}
        for name, trace, rows in (("5,000-span", traces[0], 5000), ("10-span", traces[1], 10)):
            url = f"{base}/traces/{quote(trace)}"
            _render_ms(page, url, rows)  # warm up
            timings[name] = statistics.median(_render_ms(page, url, rows) for _ in range(repeat))
        browser.close()
    print(f"5,000-span trace page in Chromium   {timings['5,000-span']:>9.1f} ms   (issue's target: < 1 s)")
    ratio = timings["5,000-span"] / timings["10-span"]
    print(f"  baseline: 10-span trace page      {timings['10-span']:>9.1f} ms   ratio {ratio:.1f}")


def _default_db_dir() -> Path:
    if os.geteuid() == 0:  # the embedded server runs as its own user, which cannot enter root's home
        return Path("/var/tmp/otel-metrics-bench-db")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "otel-metrics" / "bench-db"


_MARKER = "ui_bench_loaded"


def _ensure_loaded(conn: psycopg.Connection[Any], spans: int, reload: bool) -> tuple[datetime, tuple[str, str]]:
    """The schema's data window end and its (5,000-span, 10-span) trace ids; loads them first if needed."""
    schema.migrate(conn)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {_MARKER} (spans bigint, end_time timestamptz, big text, small text)")
    row = conn.execute(f"SELECT end_time, big, small FROM {_MARKER}").fetchone()
    if row and not reload:
        return row[0], (row[1], row[2])
    for table in ("spans", "span_events", "span_links", "span_rollups_1m", "span_rollups_1h", _MARKER):
        conn.execute(f"TRUNCATE {table}")
    conn.execute("TRUNCATE analytics_rollup_days, analytics_rollup_hours")
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    print(f"loading {spans:,} spans over 30 days (cpus: {os.cpu_count()})", flush=True)
    started = time.perf_counter()
    analytics_latency.load(conn, spans, end)
    # The traces sit in the data's last hour (fresh ids: never mixed with the generated spans).
    at = end - timedelta(minutes=10)
    big = ui_data.wide_trace_specs(5000, at, trace_id=os.urandom(16).hex())
    small = ui_data.wide_trace_specs(10, at, trace_id=os.urandom(16).hex())
    dsn = conn.info.dsn
    ui_data.write_specs(dsn, big)
    ui_data.write_specs(dsn, small)
    ids = (big[0].trace_id, small[0].trace_id)
    conn.execute(f"INSERT INTO {_MARKER} VALUES (%s, %s, %s, %s)", (spans, end, *ids))
    print(f"  loaded in {time.perf_counter() - started:.0f} s", flush=True)
    return end, ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=10_000_000, help="spans to load (default 10,000,000)")
    parser.add_argument("--db-dir", type=Path, default=None, help="the kept embedded PostgreSQL's directory")
    parser.add_argument("--dsn", help="PostgreSQL to use instead of the embedded one (the schema is kept)")
    parser.add_argument("--reload", action="store_true", help="load the schema again")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (median reported)")
    args = parser.parse_args()
    dsn = args.dsn
    if not dsn:
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

        db_dir = args.db_dir or _default_db_dir()
        db_dir.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(db_dir, cleanup_mode="stop")
        dsn = server.get_uri()
        print(f"database: {db_dir}")
    name = f"ui_bench_{args.spans}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
    sep = "&" if "?" in dsn else "?"
    schema_dsn = f"{dsn}{sep}options={quote(f'-c search_path={name}')}"
    with psycopg.connect(schema_dsn, autocommit=True) as conn:
        end, traces = _ensure_loaded(conn, args.spans, args.reload)
        counted = conn.execute("SELECT count(*) FROM spans").fetchone()
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()
        print(f"  {counted[0] if counted else 0:,} spans (schema {name}; database {size[0] if size else '?'})")
    window = TimeWindow(end - timedelta(days=30), end)
    _explain(schema_dsn, window)
    serving = _Serving(schema_dsn)
    try:
        _overview(serving.url, window.start.isoformat(), window.end.isoformat(), args.repeat)
        _trace_render(serving.url, traces, args.repeat)
    finally:
        serving.stop()


if __name__ == "__main__":
    main()
