"""The HTTP API on a real uvicorn server (port 0) with httpx, against the loaded sink."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest

from collector.analytics.alerts import AlertStore, Firing
from collector.analytics.api import AnalyticsAPI
from collector.analytics.config import AnalyticsConfig
from collector.analytics.models import OperationPerformance
from tests.collector.analytics import analytics_data
from tests.collector.analytics.analytics_data import Loaded
from tests.collector.analytics.served import serve

END = analytics_data.END
RAW = {"since": (END - timedelta(hours=12)).isoformat(), "until": END.isoformat()}
JSON = {"Content-Type": "application/json"}
FULL = {"since": (END - timedelta(days=10)).isoformat(), "until": END.isoformat()}


@pytest.fixture
def client(dataset: Loaded) -> Iterator[httpx.Client]:
    with serve(AnalyticsAPI(lambda: dataset.dsn, AnalyticsConfig(max_limit=50))) as c:
        yield c


def test_health_reports_database_and_uptime(client: httpx.Client) -> None:
    r = client.get("/health")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "healthy"
    assert body["checks"]["database"]["status"] == "healthy" and body["checks"]["database"]["latency_ms"] >= 0
    assert body["uptime_s"] >= 0


def test_health_degrades_when_the_database_is_unreachable() -> None:
    with serve(AnalyticsAPI(lambda: "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")) as c:
        r = c.get("/health")
        assert r.status_code == 503 and r.json()["checks"]["database"]["status"] == "unavailable"
        assert c.get("/performance").status_code == 503


def test_openapi_document_describes_every_route_and_model(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in (
        "/api/v1/performance",
        "/api/v1/trends",
        "/api/v1/costs",
        "/api/v1/alerts/{id}/ack",
        "/api/v1/budgets",
        "/api/v1/health",
    ):
        assert path in doc["paths"], path
    perf = doc["components"]["schemas"]["OperationPerformance"]
    assert list(perf["properties"]) == list(OperationPerformance.__dataclass_fields__)
    assert perf["properties"]["p95_ms"]["type"] == ["number", "null"]
    assert "put" in doc["paths"]["/api/v1/budgets"] and "security" not in doc["paths"]["/api/v1/budgets"]["put"]


def test_performance_matches_numpy_and_paginates(client: httpx.Client, dataset: Loaded) -> None:
    d = dataset.data
    body = client.get("/performance", params=RAW).json()
    assert body["window"]["source"] == "raw" and body["limit"] == 50 and body["offset"] == 0
    w = d.mask(END - timedelta(hours=12), END)
    for row in body["items"]:
        m = w & (d.operation == row["operation"])
        assert row["calls"] == m.sum()
        assert row["p99_ms"] == pytest.approx(np.percentile(d.duration_ms[m], 99), rel=1e-9)
    page = client.get("/performance", params={**RAW, "limit": 1, "offset": 1}).json()
    assert [r["operation"] for r in page["items"]] == [body["items"][1]["operation"]]
    capped = client.get("/performance", params={**RAW, "limit": 10_000}).json()
    assert capped["limit"] == 50
    full = client.get("/performance", params=FULL).json()
    assert full["window"]["source"] == "rollup" and all(not r["exact"] for r in full["items"])


def test_other_endpoints(client: httpx.Client, dataset: Loaded) -> None:
    d = dataset.data
    series = client.get("/timeseries", params={**FULL, "granularity": "day"}).json()["items"]
    assert len(series) == 10 and sum(b["operations"] for b in series) == len(d.start_s)
    trends = client.get("/trends", params={**FULL, "operation": "search.query", "metric": ["p95_ms", "calls"]})
    assert [t["metric"] for t in trends.json()["items"]] == ["p95_ms", "calls"]
    costs = client.get("/costs", params={**FULL, "by": "model"}).json()["items"]
    assert sum(c["cost_usd"] for c in costs) == pytest.approx(d.cost.sum(), rel=1e-9)
    users = client.get("/users", params=FULL).json()
    assert users["active_users"] == 6 and len(users["items"]) == 6
    agents = client.get("/agents", params={**RAW, "by": "role"}).json()["items"]
    assert {a["agent"] for a in agents} == {"lead", "worker"}
    pct = client.get("/percentiles", params={**FULL, "field": "tokens"}).json()
    assert pct["count"] == (d.model != "").sum() and pct["exact"] is True  # spans without tokens are skipped
    outliers = client.get("/outliers", params={**FULL, "limit": 2}).json()["items"]
    assert len(outliers) == 2 and abs(outliers[0]["z_score"]) >= abs(outliers[1]["z_score"]) >= 3
    cid = str(d.correlation[0])
    assert client.get(f"/costs/correlation/{cid}").json()["spans"] == (d.correlation == cid).sum()
    assert client.get("/costs/correlation/none-such").status_code == 404
    hourly = client.get("/usage/hourly", params=FULL).json()["items"]
    assert len(hourly) == 24 and sum(h["count"] for h in hourly) == len(d.start_s)
    insights = client.get("/insights", params=FULL).json()["items"]
    assert any(i["kind"] == "degrading_operation" for i in insights) or insights
    value = client.get("/business-value", params={**FULL, "minutes_saved": 6, "hourly_rate": 50}).json()
    assert value["tasks"] == (~d.error).sum()
    assert client.get("/business-value", params=FULL).status_code == 400
    assert client.get("/summary").json()["status"] in ("healthy", "degraded", "no_data")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "soon"}, "ISO 8601"),
        ({"hours": "abc"}, "hours: expected a number"),
        ({"limit": "0"}, "limit: must be between 1"),
        ({"group_by": "tenant"}, "group_by: expected one of"),
        ({"service": "serch"}, "unknown service 'serch'"),
    ],
)
def test_bad_arguments_are_400_naming_the_parameter(client: httpx.Client, params: dict[str, str], message: str) -> None:
    r = client.get("/performance", params=params)
    assert r.status_code == 400 and message in r.json()["error"]
    if "service" in params:
        assert r.json()["suggestions"] == ["search"]


def test_bearer_token(dataset: Loaded) -> None:
    with serve(AnalyticsAPI(lambda: dataset.dsn, AnalyticsConfig(token="s3cret"))) as c:
        assert c.get("/performance", params=RAW).status_code == 401
        assert c.get("/performance", params=RAW, headers={"Authorization": "Bearer wrong"}).status_code == 401
        r = c.get("/performance", params=RAW, headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and r.json()["items"]
        assert c.get("/health").status_code == 200
        doc = c.get("/openapi.json").json()
        assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert doc["paths"]["/api/v1/performance"]["get"]["security"] == [{"bearer": []}]


def test_budgets_and_alerts_over_http(pg_dsn: str) -> None:
    with serve(AnalyticsAPI(lambda: pg_dsn)) as c:
        r = c.put("/budgets", json={"scope": "model", "name": "gpt-4o", "period": "day", "amount_usd": 12.5})
        assert r.status_code == 200 and r.json()["amount_usd"] == 12.5 and r.json()["status"] == "ok"
        assert c.get("/budgets").json()["items"][0]["name"] == "gpt-4o"
        bad = c.put("/budgets", json={"scope": "team", "name": "x", "amount_usd": 1, "colour": "red"})
        assert bad.status_code == 400 and "colour" in bad.json()["error"]
        assert c.put("/budgets", content=b"{not json", headers=JSON).status_code == 400
        assert c.delete("/budgets/model/gpt-4o/day", headers=JSON).status_code == 200
        assert c.delete("/budgets/model/gpt-4o/day", headers=JSON).status_code == 404
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            (alert,), _ = AlertStore(conn).apply(
                [Firing("slow", "critical", "service=a", "avg_ms", 9.0, 5.0, "m")], ["slow"]
            )
        listed = c.get("/alerts", params={"status": "open"}).json()["items"]
        assert [a["id"] for a in listed] == [alert.id]
        acked = c.post(f"/alerts/{alert.id}/ack", json={"by": "oncall"})
        assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
        assert c.post(f"/alerts/{alert.id}/ack", json={}).status_code == 404
        assert c.post(f"/alerts/{alert.id}/resolve", json={}).json()["status"] == "resolved"
        assert c.post(f"/alerts/{alert.id}/resolve", json={}).status_code == 404
        assert c.post("/alerts/abc/resolve", json={}).status_code == 400
        assert c.get("/alerts", params={"status": "zzz"}).status_code == 400
        assert c.post("/alerts/evaluate", json={}).json()["items"] == []  # no data: nothing fires
        services = c.get("/services").json()
        assert services["status"] == "no_data"


def test_routing_and_openapi_come_from_one_table(dataset: Loaded) -> None:
    """Every spec is served and documented; a spec another package adds (as the UI's trace routes do) gets the
    same auth, thread pool and error handling, and appears in the document with its schema."""
    from collector.analytics.routes import API_ROUTES
    from collector.analytics.routing import Call, Param, RouteSpec

    def echo(call: Call) -> Any:
        services = call.analytics.services()
        if call.args.get("fail"):
            raise ValueError("fail: asked to")
        return {"services": services, "word": call.path("word")}

    extra = RouteSpec(
        "GET", "/echo/{word}", echo, "Echo", result="Echo", params=(Param("word", where="path"), Param("fail"))
    )
    schemas = {"Echo": {"type": "object"}}
    api = AnalyticsAPI(lambda: dataset.dsn, AnalyticsConfig(token="t"), routes=(*API_ROUTES, extra), schemas=schemas)
    with serve(api) as c:
        auth = {"Authorization": "Bearer t"}
        doc = c.get("/openapi.json").json()
        documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
        assert documented == {(s.method, "/api/v1" + s.path) for s in (*API_ROUTES, extra)}
        assert doc["paths"]["/api/v1/echo/{word}"]["get"]["security"] == [{"bearer": []}]
        assert doc["components"]["schemas"]["Echo"] == {"type": "object"}
        assert c.get("/echo/hi").status_code == 401
        assert c.get("/echo/hi", headers=auth).json() == {"services": ["agents", "checkout", "search"], "word": "hi"}
        r = c.get("/echo/hi", params={"fail": "1"}, headers=auth)
        assert r.status_code == 400 and r.json() == {"error": "fail: asked to"}
        for spec in API_ROUTES:  # every documented GET route without path parameters is routed
            if spec.method == "GET" and "{" not in spec.path:
                assert c.get(spec.path, headers=auth).status_code != 404, spec.path
