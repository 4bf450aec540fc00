"""The pages over HTTP (no browser): the token as bearer or Basic password, errors that name the parameter, page
URLs that carry the filters, and the guard on changes (JSON only, same origin, token)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import psycopg

from collector.analytics.alerts import AlertStore, Firing
from collector.analytics.budgets import BudgetStore
from collector.analytics.ui.format import usd as format_usd
from tests.collector.analytics.ui import ui_data
from tests.collector.analytics.ui.ui_server import TOKEN, Served, serving

BASIC = ("anyone", TOKEN)


def test_pages_need_the_token_as_bearer_or_basic_password(served: Served) -> None:
    for path in ("/", "/traces", f"/traces/{ui_data.TRACE_A}", "/costs", "/alerts"):
        refused = httpx.get(served.url + path, timeout=30)
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"].startswith("Basic ")
        assert httpx.get(served.url + path, auth=("x", "wrong"), timeout=30).status_code == 401
        assert httpx.get(served.url + path, auth=BASIC, timeout=30).status_code == 200, path
    bearer = httpx.get(served.url + "/traces", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert bearer.status_code == 200 and "<h1>Traces</h1>" in bearer.text


def test_page_urls_carry_the_filters_and_every_trace_links_to_its_page(served: Served) -> None:
    page = httpx.get(f"{served.url}/traces", params={"correlation_id": ui_data.CORRELATION}, auth=BASIC, timeout=30)
    links = set(re.findall(r'href="/traces/([0-9a-f]{32})"', page.text))
    assert links == {ui_data.TRACE_A, ui_data.TRACE_B}
    everything = httpx.get(f"{served.url}/traces", params={"hours": "2"}, auth=BASIC, timeout=30).text
    assert len(set(re.findall(r'href="/traces/([0-9a-f]{32})"', everything))) == 50
    assert 'rel="next"' in everything  # 62 traces: a second page
    second = httpx.get(f"{served.url}/traces", params={"hours": "2", "offset": "50"}, auth=BASIC, timeout=30).text
    assert len(set(re.findall(r'href="/traces/([0-9a-f]{32})"', second))) == ui_data.BACKGROUND + 2 - 50
    trace = httpx.get(f"{served.url}/traces/{ui_data.TRACE_A}", auth=BASIC, timeout=30).text
    assert f'href="/traces?correlation_id={ui_data.CORRELATION}"' in trace
    assert f'href="/traces/{ui_data.TRACE_B}"' in trace  # the retry, one click away


def test_bad_parameters_and_unknown_traces_render_an_error_page(served: Served) -> None:
    bad = httpx.get(f"{served.url}/traces", params={"min_cost_usd": "cheap"}, auth=BASIC, timeout=30)
    assert bad.status_code == 400 and "min_cost_usd: expected a number, got &#39;cheap&#39;" in bad.text
    costs = httpx.get(f"{served.url}/costs", params={"by": "colour"}, auth=BASIC, timeout=30)
    assert costs.status_code == 400 and "by: expected one of model, provider" in costs.text
    missing = httpx.get(f"{served.url}/traces/{'ab' * 16}", auth=BASIC, timeout=30)
    assert missing.status_code == 404 and "no spans with trace id" in missing.text
    malformed = httpx.get(f"{served.url}/traces/not-a-trace", auth=BASIC, timeout=30)
    assert malformed.status_code == 400 and "trace_id: expected 32 hex digits" in malformed.text


def test_changes_are_json_same_origin_and_need_the_token(pg_server_dsn: str) -> None:
    with serving(pg_server_dsn) as (served, dsn):
        with psycopg.connect(dsn, autocommit=True) as conn:
            (alert,), _ = AlertStore(conn).apply(
                [Firing("p95_latency", "critical", "service=tools-service", "p95_ms", 1900.0, 1500.0, "slow")],
                ["p95_latency"],
            )
        url = f"{served.url}/ui/alerts/{alert.id}/ack"
        json_type = {"Content-Type": "application/json"}
        assert httpx.post(url, content="{}", headers=json_type, timeout=30).status_code == 401
        form = httpx.post(url, data={"x": "1"}, auth=BASIC, timeout=30)
        assert form.status_code == 415 and "JSON" in form.json()["error"]
        evil = httpx.post(url, content="{}", headers={**json_type, "Origin": "http://evil.example"}, auth=BASIC)
        assert evil.status_code == 403
        with psycopg.connect(dsn, autocommit=True) as conn:
            unchanged = AlertStore(conn).get(alert.id)
        assert unchanged is not None and unchanged.status == "active"  # nothing refused changed anything

        origin = {**json_type, "Origin": served.url}
        done = httpx.post(url, content='{"by": "oncall"}', headers=origin, auth=BASIC, timeout=30)
        assert done.status_code == 200 and done.json()["status"] == "acknowledged"
        again = httpx.post(url, content="{}", headers=json_type, auth=BASIC, timeout=30)
        assert again.status_code == 404 and "no active alert" in again.json()["error"]
        resolved = httpx.post(url.replace("/ack", "/resolve"), content="{}", headers=json_type, auth=BASIC)
        assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
        with psycopg.connect(dsn, autocommit=True) as conn:
            final = AlertStore(conn).get(alert.id)
        assert final is not None and final.status == "resolved" and final.acknowledged_at is not None


def test_budgets_are_set_by_json_same_origin_posts_with_the_token(pg_server_dsn: str) -> None:
    with serving(pg_server_dsn) as (served, dsn):
        url = f"{served.url}/ui/budgets"
        body = '{"scope": "tenant", "name": "acme", "period": "month", "amount_usd": 0.5}'
        json_type = {"Content-Type": "application/json"}
        assert httpx.post(url, content=body, headers=json_type, timeout=30).status_code == 401
        assert httpx.post(url, data={"scope": "tenant"}, auth=BASIC, timeout=30).status_code == 415
        evil = {**json_type, "Origin": "http://evil.example"}
        assert httpx.post(url, content=body, headers=evil, auth=BASIC, timeout=30).status_code == 403
        foreign = httpx.post(url, content=body, headers={**json_type, "Host": "evil.example"}, auth=BASIC, timeout=30)
        assert foreign.status_code == 400  # the API's Host check covers the pages' changes too
        for bad, message in (
            ('{"scope": "planet", "name": "x", "amount_usd": 1}', "scope"),
            ('{"scope": "tenant", "name": "x", "amount_usd": "lots"}', "body.amount_usd: expected a finite number"),
            ('{"scope": "tenant", "name": "x", "amount_usd": 1, "owner": "me"}', "unknown key"),
            ("[1, 2]", "body: expected a JSON object"),
            ("{not json", "body: expected JSON"),
        ):
            refused = httpx.post(url, content=bad, headers=json_type, auth=BASIC, timeout=30)
            assert refused.status_code == 400 and message in refused.json()["error"], bad
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert BudgetStore(conn).status() == []  # nothing refused changed anything
        saved = httpx.post(url, content=body, headers={**json_type, "Origin": served.url}, auth=BASIC, timeout=30)
        assert saved.status_code == 200
        assert (saved.json()["scope"], saved.json()["name"], saved.json()["amount_usd"]) == ("tenant", "acme", 0.5)
        assert saved.json()["spent_usd"] > 0  # acme's requests of the last hour
        page = httpx.get(f"{served.url}/alerts", auth=BASIC, timeout=30).text
        assert "acme" in page.split("<h2>Budgets</h2>")[1]


def test_span_details_for_the_trace_page(served: Served) -> None:
    url = f"{served.url}/ui/traces/{ui_data.TRACE_A}/spans/0000000000000005"
    assert httpx.get(url, timeout=30).status_code == 401
    span = httpx.get(url, auth=BASIC, timeout=30).json()
    assert (span["service"], span["name"], span["status"]) == ("tools-service", "GET /v1/search", "error")
    assert span["exceptions"][0]["message"] == "search backend timed out"
    assert span["attributes"]["tenant.id"] == "acme" and span["resource"]["service.version"] == "1.4.2"
    missing = httpx.get(url.replace("0005", "0099"), auth=BASIC, timeout=30)
    assert missing.status_code == 404 and "no span" in missing.json()["error"]
    bad = httpx.get(url.replace("0000000000000005", "zz"), auth=BASIC, timeout=30)
    assert bad.status_code == 400 and "span_id: expected 16 hex digits" in bad.json()["error"]
    # The timeline page itself carries no attribute maps (they come from here when a span is selected).
    page = httpx.get(f"{served.url}/traces/{ui_data.TRACE_A}", auth=BASIC, timeout=30).text
    assert "deployment.environment" not in page and '["0000000000000005",' in page


def _tile(page: str, label: str) -> str:
    found = re.search(rf'{label}</span><span class="value"[^>]*>([^<]+)<', page)
    assert found, label
    return found.group(1)


def test_requests_are_root_and_server_spans_and_cost_figures_cover_the_whole_window(pg_server_dsn: str) -> None:
    """The overview and the costs page count traces (root spans), each request once; the overview's services table
    counts the requests into each service, and the overview filtered by a service the requests into it."""
    with serving(pg_server_dsn) as (served, dsn):
        ui_data.write_specs(dsn, ui_data.old_request_specs(datetime.now(UTC)))
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE parent_span_id IS NULL OR kind = 2),"
                " count(*) FILTER (WHERE parent_span_id IS NULL), count(*), sum(cost_usd)::float8 FROM spans"
            ).fetchone()
        assert row is not None
        requests, traces, spans, cost = row
        assert 0 < traces < requests < spans  # trace A entered two services
        overview = httpx.get(f"{served.url}/", params={"hours": "720"}, auth=BASIC, timeout=60).text
        assert (
            _tile(overview, "Requests") == f"{traces:,}" and "traces · " in overview and f"{spans:,} spans" in overview
        )
        table = overview.split("<h2>Services</h2>")[1].split("</table>")[0]
        per_service = {
            service: int(n.replace(",", ""))
            for service, n in re.findall(r'>([a-z-]+)</a></th><td class="num">([\d,]+)<', table)
        }
        assert sum(per_service.values()) == requests and set(per_service) >= {"agent-service", "tools-service"}
        for service, n in per_service.items():
            one = httpx.get(f"{served.url}/", params={"hours": "720", "service": service}, auth=BASIC, timeout=60)
            assert _tile(one.text, "Requests") == f"{n:,}" and f"into {service}" in one.text, service
        month = httpx.get(f"{served.url}/costs", params={"hours": "720", "by": "tenant"}, auth=BASIC, timeout=60)
        assert month.status_code == 200 and "last 24 h" not in month.text
        assert _tile(month.text, "Requests") == f"{traces:,}"
        assert _tile(month.text, "Cost per request") == format_usd(cost / traces)
        top = month.text.split('id="top-h"')[1].split("</table>")[0]
        links = re.findall(r'href="/traces/([0-9a-f]{32})"', top)
        assert links[:2] == [ui_data.OLD_TRACE, ui_data.TRACE_A]  # three days old, and the priciest
        today = httpx.get(f"{served.url}/costs", params={"hours": "24"}, auth=BASIC, timeout=60).text
        assert ui_data.OLD_TRACE not in today and f'href="/traces/{ui_data.TRACE_A}"' in today


def test_hostile_parameters_are_refused_naming_them(served: Served) -> None:
    for params, message in (
        ({"tenant": "a\x00b"}, "tenant: must not contain a NUL character"),
        ({"min_duration_ms": "nan"}, "min_duration_ms: expected a finite number"),
        ({"hours": "1e9"}, "hours: at most"),
        ({"offset": "99999999999999999999"}, "offset: must be between"),
        ({"correlation_id": "x" * 5000}, "correlation_id: longer than"),
    ):
        page = httpx.get(f"{served.url}/traces", params=params, auth=BASIC, timeout=30)
        assert page.status_code == 400 and message in page.text, params
        api = httpx.get(f"{served.url}/api/v1/traces", params=params, headers={"Authorization": f"Bearer {TOKEN}"})
        assert api.status_code == 400 and message in api.json()["error"], params
    # A form's empty fields are "not given", not "equal to the empty string".
    empty = httpx.get(f"{served.url}/traces", params={"tenant": "", "hours": "2"}, auth=BASIC, timeout=30).text
    assert len(set(re.findall(r'href="/traces/([0-9a-f]{32})"', empty))) == 50
    huge = httpx.post(
        f"{served.url}/ui/alerts/{2**70}/ack", content="{}", headers={"Content-Type": "application/json"}, auth=BASIC
    )
    assert huge.status_code == 404


def test_overview_and_costs_over_each_source_with_filters(served: Served) -> None:
    """Raw spans (1 h), hourly rollups (12 h), the query layer's rollups and daily cache (48 h, 30 d): the same
    calls and cost, with and without filters."""
    totals = {}
    for hours in ("1", "12", "48", "720"):
        page = httpx.get(f"{served.url}/", params={"hours": hours}, auth=BASIC, timeout=60)
        assert page.status_code == 200, hours
        calls = re.search(r'Requests</span><span class="value"[^>]*>([\d,]+)<', page.text)
        cost = re.search(r'Cost</span><span class="value">([^<]+)<', page.text)
        assert calls and cost, hours
        totals[hours] = (calls.group(1), cost.group(1))
    assert len(set(totals.values())) == 1, totals  # every span is in the last hour
    acme = httpx.get(f"{served.url}/", params={"hours": "12", "tenant": "acme", "model": "gpt-4o"}, auth=BASIC)
    assert (
        acme.status_code == 200
        and "agent-service" in acme.text
        and "tools-service" not in acme.text.split("<h2>Services</h2>")[1].split("</table>")[0]
    )
    for by in ("model", "provider", "tenant", "agent", "user", "feature"):
        costs = httpx.get(f"{served.url}/costs", params={"hours": "48", "by": by}, auth=BASIC, timeout=60)
        assert costs.status_code == 200 and "$0.1876" in costs.text, by
