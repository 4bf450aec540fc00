"""The trace endpoints of the JSON API against real PostgreSQL, through the running extension (auth, errors,
OpenAPI), and the trace query module's tree order, totals and related traces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.collector.analytics.ui import ui_data
from tests.collector.analytics.ui.ui_server import TOKEN, Served, serving

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _get(served: Served, path: str, **params: str) -> httpx.Response:
    return httpx.get(f"{served.url}/api/v1{path}", params=params, headers=AUTH, timeout=30)


def test_search_by_correlation_id_finds_both_traces_with_whole_trace_totals(served: Served) -> None:
    body = _get(served, "/traces", correlation_id=ui_data.CORRELATION).json()
    items = {t["trace_id"]: t for t in body["items"]}
    assert set(items) == {ui_data.TRACE_A, ui_data.TRACE_B}
    a = items[ui_data.TRACE_A]
    assert a["spans"] == 6 and a["errors"] == 1
    assert a["services"] == "agent-service,tools-service"
    assert (a["root_service"], a["root_name"]) == ("agent-service", "POST /v1/query")
    assert a["cost_usd"] == pytest.approx(ui_data.COST_A, abs=1e-10)
    assert a["tenant"] == "acme" and a["duration_ms"] == pytest.approx(480.0)
    assert body["window"] is None  # an id lookup ignores the window
    # Newest first: the retry started two seconds later.
    assert [t["trace_id"] for t in body["items"]] == [ui_data.TRACE_B, ui_data.TRACE_A]


def test_search_filters_ranges_and_paging(served: Served) -> None:
    total = ui_data.BACKGROUND + 2
    first = _get(served, "/traces", limit="50").json()["items"]
    second = _get(served, "/traces", limit="50", offset="50").json()["items"]
    assert len(first) == 50 and len(second) == total - 50
    assert not {t["trace_id"] for t in first} & {t["trace_id"] for t in second}
    starts = [t["start_time"] for t in first + second]
    assert starts == sorted(starts, reverse=True)

    errors = _get(served, "/traces", errors="true").json()["items"]
    assert errors and all(t["errors"] > 0 for t in errors)
    assert ui_data.TRACE_A in {t["trace_id"] for t in errors}
    assert len(errors) == 1 + sum(1 for i in range(ui_data.BACKGROUND) if i % 10 == 3)

    tools = _get(served, "/traces", service="tools-service").json()["items"]
    assert ui_data.TRACE_A in {t["trace_id"] for t in tools} and ui_data.TRACE_B not in {t["trace_id"] for t in tools}
    globex = _get(served, "/traces", tenant="globex").json()["items"]
    assert globex and {t["tenant"] for t in globex} == {"globex"}

    slow = _get(served, "/traces", min_duration_ms="400", max_duration_ms="450").json()["items"]
    assert slow and all(400 <= t["duration_ms"] <= 450 for t in slow)
    pricey = _get(served, "/traces", min_cost_usd="0.01").json()["items"]
    assert [t["trace_id"] for t in pricey] == [ui_data.TRACE_A]
    cheap_page = _get(served, "/traces", max_cost_usd="0.002", limit="5", offset="5").json()["items"]
    assert len(cheap_page) == 5 and all(t["cost_usd"] <= 0.002 for t in cheap_page)

    one = _get(served, "/traces", trace_id=ui_data.TRACE_A.upper()).json()["items"]
    assert [t["trace_id"] for t in one] == [ui_data.TRACE_A]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"trace_id": "xyz"}, "trace_id: expected 32 hex digits"),
        ({"min_duration_ms": "fast"}, "min_duration_ms: expected a number"),
        ({"min_cost_usd": "2", "max_cost_usd": "1"}, "cost: the minimum"),
        ({"errors": "maybe"}, "errors: expected true or false"),
        ({"limit": "0"}, "limit: must be between 1 and"),
        ({"hours": "-1"}, "hours must be > 0"),
    ],
)
def test_bad_parameters_are_refused_naming_the_parameter(served: Served, params: dict[str, str], message: str) -> None:
    response = _get(served, "/traces", **params)
    assert response.status_code == 400 and message in response.json()["error"]


def test_trace_detail_tree_events_attributes_and_related(served: Served) -> None:
    body = _get(served, f"/traces/{ui_data.TRACE_A}").json()
    spans = body["spans"]
    assert [(s["name"], s["service"], s["depth"]) for s in spans] == [
        ("POST /v1/query", "agent-service", 0),
        ("agent.plan", "agent-service", 1),
        ("llm.chat", "agent-service", 2),
        ("GET /v1/search", "agent-service", 2),
        ("GET /v1/search", "tools-service", 3),
        ("llm.chat", "tools-service", 4),
    ]
    failed = spans[4]
    assert failed["status"] == "error" and failed["status_message"] == "search backend timed out"
    assert failed["exceptions"][0]["type"] == "TimeoutError" and "search.py" in failed["exceptions"][0]["stacktrace"]
    assert failed["resource"]["service.version"] == "1.4.2"
    llm = spans[2]
    # Attributes the sink keeps in columns are shown under their OpenTelemetry names again.
    assert llm["attributes"]["correlation.id"] == ui_data.CORRELATION
    assert llm["attributes"]["gen_ai.request.model"] == "gpt-4o"
    assert (llm["input_tokens"], llm["output_tokens"], llm["cost_usd"]) == (1200, 300, pytest.approx(0.0123))
    assert spans[0]["offset_ms"] == 0 and spans[4]["offset_ms"] == pytest.approx(235.0)
    assert body["summary"]["cost_usd"] == pytest.approx(ui_data.COST_A, abs=1e-10)
    assert body["correlation_ids"] == [ui_data.CORRELATION] and body["truncated"] == 0
    assert [r["trace_id"] for r in body["related"]] == [ui_data.TRACE_B]


def test_unknown_trace_auth_and_openapi(served: Served) -> None:
    missing = _get(served, "/traces/" + "ab" * 16)
    assert missing.status_code == 404 and "no spans with trace id" in missing.json()["error"]
    assert httpx.get(f"{served.url}/api/v1/traces", timeout=30).status_code == 401
    doc = httpx.get(f"{served.url}/api/v1/openapi.json", timeout=30).json()
    search = doc["paths"]["/api/v1/traces"]["get"]
    names = {p["name"] for p in search["parameters"]}
    assert {"correlation_id", "trace_id", "min_duration_ms", "max_cost_usd", "errors", "tenant"} <= names
    assert search["security"] == [{"bearer": []}]
    assert doc["paths"]["/api/v1/traces/{trace_id}"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/TraceDetail"}
    assert {"TraceSummary", "TraceDetail", "Span"} <= set(doc["components"]["schemas"])


def test_long_windows_are_searched_back_to_their_start(pg_server_dsn: str) -> None:
    """The search reads the window's last hour first and widens it: a three-day-old trace is still found, and
    listed after every newer one."""
    with serving(pg_server_dsn) as (server, dsn):
        old = ui_data.wide_trace_specs(3, datetime.now(UTC) - timedelta(days=3), trace_id="7" * 32)
        ui_data.write_specs(dsn, old)
        items = _get(server, "/traces", hours="168", limit="100").json()["items"]
        assert len(items) == ui_data.BACKGROUND + 3 and items[-1]["trace_id"] == "7" * 32
        assert _get(server, "/traces", hours="24").json()["items"][-1]["trace_id"] != "7" * 32
        last = _get(server, "/traces", hours="168", limit="5", offset=str(ui_data.BACKGROUND + 2)).json()["items"]
        assert [t["trace_id"] for t in last] == ["7" * 32]
