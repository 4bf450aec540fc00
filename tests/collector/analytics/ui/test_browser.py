"""The UI in a real browser: Debian's Chromium driven by Playwright (never its own downloaded browsers).

After a load, open the overview, find a request by its correlation id, open its trace, see the spans of both
services and the right total cost, see cost per request count that request once, move through the spans with the
keyboard, acknowledge an alert and set a budget from the alerts page's form. Set
OTEL_METRICS_UI_SCREENSHOTS to a directory (docs/ui) to save a screenshot of each page there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from collector.analytics.alerts import AlertStore, Firing
from collector.analytics.budgets import Budget, BudgetStore
from collector.analytics.traces import read_timeline
from collector.analytics.ui import format as fmt
from tests.collector.analytics.ui import ui_data
from tests.collector.analytics.ui.ui_server import TOKEN, Served, serving

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
SCREENSHOTS_ENV = "OTEL_METRICS_UI_SCREENSHOTS"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the dev extra) is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (scripts/test does as root)", allow_module_level=True)

pytestmark = pytest.mark.slow


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def site(pg_server_dsn: str) -> Iterator[tuple[Served, str]]:
    with serving(pg_server_dsn) as (server, dsn):
        with psycopg.connect(dsn, autocommit=True) as conn:
            AlertStore(conn).apply(
                [
                    Firing(
                        "p95_latency",
                        "critical",
                        "service=tools-service",
                        "p95_ms",
                        1900.0,
                        1500.0,
                        "p95 1900 ms > 1500 ms over the last 10 min",
                    ),
                    Firing(
                        "error_rate",
                        "warning",
                        "service=agent-service",
                        "error_rate",
                        0.08,
                        0.05,
                        "error rate 8.0% > 5.0%",
                    ),
                ],
                ["p95_latency", "error_rate"],
            )
            BudgetStore(conn).set(Budget("tenant", "acme", "month", 0.02))
            BudgetStore(conn).set(Budget("model", "gpt-4o-mini", "day", 1.0))
        yield server, dsn


def _shot(page: Any, name: str) -> None:
    target = os.environ.get(SCREENSHOTS_ENV)
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=False)


def test_overview_search_trace_and_acknowledge(browser: Any, site: tuple[Served, str]) -> None:
    served, dsn = site
    context = browser.new_context(
        http_credentials={"username": "me", "password": TOKEN},
        viewport={"width": 1360, "height": 860},
        color_scheme="light",
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(served.url) else outside.append(r.url))

    # 1. The overview after the load: both services, charts drawn by uPlot.
    page.goto(f"{served.url}/?hours=1")
    table = page.locator("table.data").first
    sync_api.expect(table).to_contain_text("agent-service")
    sync_api.expect(table).to_contain_text("tools-service")
    sync_api.expect(page.locator("#rate canvas")).to_have_count(1)
    sync_api.expect(page.locator("#cost canvas")).to_have_count(1)
    sync_api.expect(page.locator("#lat-1 canvas")).to_have_count(1)
    sync_api.expect(page.locator("ul.alerts li")).to_have_count(2)
    _shot(page, "overview")

    # 2. Find the request by correlation id, from the keyboard.
    page.get_by_role("link", name="Traces", exact=True).click()
    field = page.get_by_label("Correlation id")
    field.fill(ui_data.CORRELATION)
    field.press("Enter")
    page.wait_for_url(f"**/traces?*correlation_id={ui_data.CORRELATION}*")
    rows = page.locator("table.traces tbody tr")
    sync_api.expect(rows).to_have_count(2)
    _shot(page, "traces")

    # 3. Open its trace: spans of both services, the right total cost.
    page.locator(f'a[data-trace-id="{ui_data.TRACE_A}"]').click()
    page.wait_for_url(f"**/traces/{ui_data.TRACE_A}")
    spans = page.locator("#span-rows .row")
    sync_api.expect(spans).to_have_count(6)
    services = {spans.nth(i).get_attribute("data-service") for i in range(6)}
    assert services == set(ui_data.SERVICES)
    sync_api.expect(page.get_by_test_id("trace-cost")).to_have_text("$0.0130")
    # The error span is selected first and shows its exception.
    detail = page.locator("#span-detail")
    sync_api.expect(detail).to_contain_text("TimeoutError: search backend timed out")
    sync_api.expect(page.locator("#span-rows .row.error")).to_have_count(1)
    _shot(page, "trace")
    if os.environ.get(SCREENSHOTS_ENV):
        page.emulate_media(color_scheme="dark")
        _shot(page, "trace-dark")
        page.emulate_media(color_scheme="light")
    # Keyboard: the selected row has focus after a click; ArrowDown selects the next span and shows its cost.
    page.locator("#span-rows .row").nth(1).click()
    page.keyboard.press("ArrowDown")
    selected = page.locator('#span-rows .row[aria-selected="true"]')
    sync_api.expect(selected).to_have_attribute("data-span-id", "0000000000000003")
    sync_api.expect(detail).to_contain_text("gpt-4o")
    sync_api.expect(detail).to_contain_text("$0.0123")
    # The retry shares the correlation id: one click away.
    page.locator(".related-list a").click()
    page.wait_for_url(f"**/traces/{ui_data.TRACE_B}")

    # 4. Costs: the breakdown, the most expensive request linked to its trace.
    page.goto(f"{served.url}/costs?hours=1&by=model")
    sync_api.expect(page.locator("#cost-by canvas")).to_have_count(1)
    sync_api.expect(page.locator("table.data").first).to_contain_text("gpt-4o")
    sync_api.expect(page.locator(f'a[href="/traces/{ui_data.TRACE_A}"]')).to_have_count(1)
    sync_api.expect(page.get_by_role("heading", name="Unpriced calls")).to_be_visible()
    with psycopg.connect(dsn, autocommit=True) as conn:
        cost, traces = conn.execute(
            "SELECT sum(cost_usd)::float8, count(*) FILTER (WHERE parent_span_id IS NULL) FROM spans"
        ).fetchone() or (0.0, 0)
    # A request counts once, though trace A entered both services.
    sync_api.expect(page.get_by_test_id("cost-per-request")).to_have_text(fmt.usd(cost / traces))
    _shot(page, "costs")

    # 5. Acknowledge an alert.
    page.get_by_role("link", name="Alerts & budgets").click()
    row = page.locator("tr[data-alert-id]", has_text="p95_latency")
    row.get_by_role("button", name="Acknowledge").click()
    sync_api.expect(row.locator(".alert-status")).to_have_text("acknowledged")
    alert_id = int(row.get_attribute("data-alert-id") or 0)
    _shot(page, "alerts")
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = AlertStore(conn).get(alert_id)
    assert found is not None and found.status == "acknowledged"

    # 6. Set a budget from the form: after the save the page lists it with what the month spent on gpt-4o.
    form = page.locator("#budget-form")
    form.get_by_label("Scope").select_option("model")
    form.get_by_label("Name").fill("gpt-4o")
    form.get_by_label("Period").select_option("month")
    form.get_by_label("Amount (USD)").fill("0.05")
    with page.expect_navigation():
        form.get_by_role("button", name="Save budget").click()
    with psycopg.connect(dsn, autocommit=True) as conn:
        status = next(b for b in BudgetStore(conn).status() if (b.scope, b.name) == ("model", "gpt-4o"))
    assert status.amount_usd == 0.05 and status.spent_usd > 0
    budget_row = page.locator("tr", has_text="gpt-4o").filter(has_text="month")
    sync_api.expect(budget_row).to_contain_text(fmt.percent(status.utilization))
    sync_api.expect(budget_row).to_contain_text(fmt.usd(status.spent_usd))
    assert not errors, errors
    assert not outside, f"the UI fetched from elsewhere: {outside}"
    context.close()


def test_five_thousand_span_trace_draws_what_is_in_view_and_reaches_every_span(
    browser: Any, site: tuple[Served, str]
) -> None:
    """A big trace: the list knows all its spans, draws only those near the view, and reaches the last one from
    the keyboard (its speed is measured in benchmarks/ui_latency.py, not here)."""
    served, dsn = site
    trace = ui_data.load_wide_trace(dsn, 5000)
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = read_timeline(conn, trace)
    assert found is not None and len(found.spans) == 5000
    context = browser.new_context(http_credentials={"username": "me", "password": TOKEN})
    page = context.new_page()
    page.goto(f"{served.url}/traces/{trace}")
    listbox = page.locator("#span-rows")
    sync_api.expect(listbox).to_have_attribute("data-spans", "5000")
    drawn = page.locator("#span-rows .row")
    assert 0 < drawn.count() < 200
    selected = page.locator('#span-rows .row[aria-selected="true"]')
    sync_api.expect(selected).to_have_attribute("data-span-id", found.spans[0].span_id)
    selected.focus()
    page.keyboard.press("End")
    sync_api.expect(selected).to_have_attribute("data-span-id", found.spans[-1].span_id)
    sync_api.expect(selected).to_have_attribute("aria-posinset", "5000")
    in_view = "r => r.offsetTop >= r.parentElement.parentElement.scrollTop && r.offsetTop + r.offsetHeight <="
    in_view += " r.parentElement.parentElement.scrollTop + r.parentElement.parentElement.clientHeight"
    assert selected.evaluate(in_view)  # scrolled into the list's view
    page.keyboard.press("ArrowUp")
    sync_api.expect(selected).to_have_attribute("data-span-id", found.spans[-2].span_id)
    sync_api.expect(page.locator("#span-detail")).to_contain_text(found.spans[-2].name)
    assert drawn.count() < 200
    context.close()
