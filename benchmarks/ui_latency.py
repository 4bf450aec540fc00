"""The web UI's speed: a 30-day overview over a large database, and rendering a 5,000-span trace in Chromium.

Loads N spans (default 1,000,000; the issue's figure is for 10,000,000) over 30 days with
``analytics_latency.load`` (same generator and rollups), serves the UI with the real app (``ui.analytics_app``)
on a loopback port, and prints, as medians of ``--repeat`` runs:

- the 30-day overview page (``/?hours=720``: per-service rate, error rate, p50/p95/p99 series, cost series,
  table, alerts, budgets), next to the API's 30-day per-service performance (``/api/v1/performance``) on the same
  data as the same-run baseline;
- the trace page of a 5,000-span trace in Chromium (navigation start to every row drawn and a span selected), next
  to a 10-span trace as the baseline (needs Debian's chromium and the ``playwright`` package; skipped otherwise).

    .venv/bin/python benchmarks/ui_latency.py [--spans 10000000] [--dsn postgresql://...] [--schema NAME]

``--dsn URL --keep`` keeps the loaded schema; ``--dsn URL --schema NAME`` reuses it, or one loaded by
``analytics_latency.py --keep`` (no load).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests" / "ui")]

import analytics_latency  # noqa: E402
import ui_data  # noqa: E402

from collector.analytics.config import AlertsConfig, AnalyticsConfig  # noqa: E402
from collector.analytics.ui import analytics_app  # noqa: E402
from collector.confighttp import HTTPServer  # noqa: E402
from collector.exporters.postgres import schema  # noqa: E402

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


def _overview(base: str, repeat: int) -> None:
    started = time.perf_counter()
    _get(f"{base}/?hours=720")
    print(
        f"first 30-day overview (cold: builds the daily rollup cache): {(time.perf_counter() - started) * 1000:.0f} ms"
    )
    page = _median_ms(lambda: _get(f"{base}/?hours=720"), repeat)
    api = _median_ms(lambda: _get(f"{base}/api/v1/performance?hours=720&group_by=service"), repeat)
    one_day = _median_ms(lambda: _get(f"{base}/?hours=24"), repeat)
    print(f"30-day overview page                {page:>9.1f} ms   (issue's target: < 300 ms on 10 M spans)")
    print(f"  baseline: 30-day API performance  {api:>9.1f} ms   ratio {page / api:.2f}")
    costs = _median_ms(lambda: _get(f"{base}/costs?hours=720"), repeat)
    print(f"24-hour overview page               {one_day:>9.1f} ms")
    print(f"30-day costs page                   {costs:>9.1f} ms   (request-level figures read raw spans)")


def _render_ms(page: Any, url: str, rows: int) -> float:
    page.goto(url)
    page.wait_for_function(
        "n => document.readyState === 'complete' && document.querySelectorAll('#span-rows .row').length === n"
        " && document.querySelector('#span-rows .row[aria-selected=\"true\"]') !== null",
        arg=rows,
    )
    # Navigation start to now: server render, transfer, parse, layout and the page's script.
    return float(page.evaluate("performance.now()"))


def _trace_render(base: str, dsn: str, repeat: int) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("trace render: skipped (the playwright package is not installed)")
        return
    if not Path(CHROMIUM).exists():
        print(f"trace render: skipped ({CHROMIUM} is absent; apt-get install chromium)")
        return
    now = datetime.now(UTC)
    # Fresh trace ids: a rerun on a kept schema must not add spans to an earlier run's traces.
    big_specs = ui_data.wide_trace_specs(5000, now, trace_id=os.urandom(16).hex())
    small_specs = ui_data.wide_trace_specs(10, now, trace_id=os.urandom(16).hex())
    ui_data.write_specs(dsn, big_specs)
    ui_data.write_specs(dsn, small_specs)
    big = big_specs[0].trace_id
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1360, "height": 860})
        timings = {}
        for name, trace, rows in (("5,000-span", big, 5000), ("10-span", small_specs[0].trace_id, 10)):
            url = f"{base}/traces/{quote(trace)}"
            _render_ms(page, url, rows)  # warm up
            timings[name] = statistics.median(_render_ms(page, url, rows) for _ in range(repeat))
        browser.close()
    print(f"5,000-span trace page in Chromium   {timings['5,000-span']:>9.1f} ms   (issue's target: < 1 s)")
    ratio = timings["5,000-span"] / timings["10-span"]
    print(f"  baseline: 10-span trace page      {timings['10-span']:>9.1f} ms   ratio {ratio:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans to load (default 1,000,000)")
    parser.add_argument("--dsn", help="PostgreSQL to use (a fresh schema is created and dropped)")
    parser.add_argument("--schema", help="reuse this loaded schema (kept; needs --dsn, no load)")
    parser.add_argument("--keep", action="store_true", help="keep the loaded schema (reuse it with --schema)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (median reported)")
    args = parser.parse_args()
    tmp: Path | None = None
    server = None
    dsn = args.dsn
    if not dsn:
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

        tmp = Path(tempfile.mkdtemp(prefix="otel-ui-bench-"))
        server = pgserver.get_server(tmp / "data", cleanup_mode="stop")
        dsn = server.get_uri()
    name = args.schema or f"ui_bench_{os.getpid()}"
    if not args.schema:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in dsn else "?"
    schema_dsn = f"{dsn}{sep}options={quote(f'-c search_path={name}')}"
    serving = None
    try:
        with psycopg.connect(schema_dsn, autocommit=True) as conn:
            schema.migrate(conn)
            if not args.schema:
                end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
                print(f"loading {args.spans:,} spans over 30 days (cpus: {os.cpu_count()})")
                analytics_latency.load(conn, args.spans, end)
            loaded = conn.execute("SELECT count(*) FROM spans").fetchone()
            print(f"  {loaded[0] if loaded else 0:,} spans")
        serving = _Serving(schema_dsn)
        _overview(serving.url, args.repeat)
        _trace_render(serving.url, schema_dsn, args.repeat)
    finally:
        if serving is not None:
            serving.stop()
        if args.keep or args.schema:
            print(f"kept schema {name}")
        else:
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA {name} CASCADE")
        if server is not None:
            server.cleanup()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
