"""The analytics API against a hostile client: no token off loopback, no cross-site changes (415 without JSON), no
foreign Host (DNS rebinding), bounded bodies (413), and any query value a 400 naming the parameter, never a 500."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from collector.analytics.alerts import AlertStore, Firing
from collector.analytics.api import MAX_BODY_BYTES, AnalyticsAPI
from collector.analytics.config import AnalyticsConfig
from collector.analytics.extension import config_from_file
from collector.analytics.routes import API_ROUTES
from collector.cli import app
from tests.collector.analytics import analytics_data
from tests.collector.analytics.analytics_data import Loaded
from tests.collector.analytics.served import serve

END = analytics_data.END
JSON = {"Content-Type": "application/json"}


# -- safe by default -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("endpoint", "needs_token"),
    [
        ("127.0.0.1:8890", False),
        ("localhost:8890", False),
        ("[::1]:8890", False),
        ("127.0.0.7:0", False),
        ("0.0.0.0:8890", True),
        (":8890", True),
        ("[::]:8890", True),
        ("192.168.1.10:8890", True),
        ("analytics.internal:8890", True),
    ],
)
def test_a_non_loopback_endpoint_needs_a_token(endpoint: str, needs_token: bool) -> None:
    errors = AnalyticsConfig(endpoint=endpoint).validate()
    assert any(e.startswith("token: required") for e in errors) == needs_token
    assert AnalyticsConfig(endpoint=endpoint, token="t").validate() == []


def test_the_api_refuses_to_start_off_loopback_without_a_token(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["api", "--dsn", "postgresql://nobody@127.0.0.1:1/x", "--endpoint", "0.0.0.0:0"])
    assert result.exit_code == 2 and "token: required" in result.stderr
    path = tmp_path / "otel-collector.yaml"
    path.write_text("extensions:\n  analytics:\n    endpoint: 0.0.0.0:8890\n")
    with pytest.raises(ValueError, match=r"extensions.analytics: token: required"):
        config_from_file(path)


# -- cross-site requests, Host, bodies ---------------------------------------------------------------------------
@pytest.fixture
def writable(pg_dsn: str) -> Iterator[tuple[httpx.Client, int, str]]:
    """The API over a schema with one active alert: a client, the alert id, the DSN."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        (alert,), _ = AlertStore(conn).apply(
            [Firing("slow", "warning", "service=a", "avg_ms", 9.0, 5.0, "m")], ["slow"]
        )
    with serve(AnalyticsAPI(lambda: pg_dsn)) as client:
        yield client, alert.id, pg_dsn


def test_changes_need_a_json_body_so_a_foreign_page_cannot_make_them(writable: tuple[httpx.Client, int, str]) -> None:
    client, alert_id, dsn = writable
    # What a cross-site <form> or fetch without preflight can send: text/plain, form-encoded, or no body at all.
    assert (
        client.post(
            f"/alerts/{alert_id}/ack", content=b'{"by": "x"}', headers={"Content-Type": "text/plain"}
        ).status_code
        == 415
    )
    assert client.post(f"/alerts/{alert_id}/resolve", data={"by": "x"}).status_code == 415
    assert client.post(f"/alerts/{alert_id}/resolve").status_code == 415
    r = client.put(
        "/budgets", content=b'{"scope":"model","name":"m","amount_usd":1}', headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    assert client.delete("/budgets/model/m/month").status_code == 415
    with psycopg.connect(dsn) as conn:
        assert AlertStore(conn).get(alert_id).status == "active"  # type: ignore[union-attr]
        assert conn.execute("SELECT count(*) FROM budgets").fetchone() == (0,)
    ok = client.post(
        f"/alerts/{alert_id}/ack", json={"by": "oncall"}, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 200 and ok.json()["status"] == "acknowledged"


def test_bodies_are_bounded(writable: tuple[httpx.Client, int, str]) -> None:
    client, alert_id, _ = writable
    big = b'{"by": "' + b"x" * (MAX_BODY_BYTES + 1) + b'"}'
    assert client.post(f"/alerts/{alert_id}/ack", content=big, headers=JSON).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"by": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    assert client.post(f"/alerts/{alert_id}/ack", content=chunks(), headers=JSON).status_code == 413
    assert client.post(f"/alerts/{alert_id}/ack", json={"by": "me"}).status_code == 200


@pytest.mark.parametrize("body", [{"by": {"a": 1}}, {"by": "x\x00y"}, {"by": 5}, ["by"], "by"])
def test_a_wrong_body_is_a_400_naming_the_field(writable: tuple[httpx.Client, int, str], body: Any) -> None:
    client, alert_id, _ = writable
    r = client.post(f"/alerts/{alert_id}/ack", json=body)
    assert r.status_code == 400 and "body" in r.json()["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scope": "model", "name": {"a": 1}, "amount_usd": 1}, "body.name"),
        ({"scope": "model", "name": "m\x00", "amount_usd": 1}, "body.name"),
        ({"scope": "model", "name": "m", "amount_usd": "1"}, "body.amount_usd"),
        ({"scope": "model", "name": "m", "amount_usd": True}, "body.amount_usd"),
        (b'{"scope": "model", "name": "m", "amount_usd": 1e400}', "body.amount_usd"),  # json reads inf
        ({"scope": ["model"], "name": "m", "amount_usd": 1}, "body.scope"),
    ],
)
def test_a_wrong_budget_is_a_400_naming_the_field(
    writable: tuple[httpx.Client, int, str], body: Any, field: str
) -> None:
    client, _, _ = writable
    r = (
        client.put("/budgets", content=body, headers=JSON)
        if isinstance(body, bytes)
        else client.put("/budgets", json=body)
    )
    assert r.status_code == 400 and field in r.json()["error"]


def test_only_allowed_hosts_are_answered(dataset: Loaded) -> None:
    api = AnalyticsAPI(lambda: dataset.dsn, AnalyticsConfig(allowed_hosts=["analytics.internal"]))
    with serve(api) as client:
        port = client.base_url.port
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "", "analytics.internal.evil"):
            r = client.get("/health", headers={"Host": host})
            assert r.status_code == 400 and "allowed_hosts" in r.json()["error"], host
        for host in (
            f"localhost:{port}",
            f"127.0.0.1:{port}",
            f"[::1]:{port}",
            "analytics.internal",
            "ANALYTICS.internal:1",
        ):
            assert client.get("/health", headers={"Host": host}).status_code == 200, host
    with serve(AnalyticsAPI(lambda: dataset.dsn, AnalyticsConfig(allowed_hosts=["*"]))) as client:
        assert client.get("/health", headers={"Host": "anything.example"}).status_code == 200


# -- any query value -------------------------------------------------------------------------------------------
class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_log() -> Iterator[_Records]:
    """Warnings and errors of our code and of uvicorn (which logs an unhandled exception with its traceback)."""
    handler = _Records()
    loggers = [logging.getLogger(n) for n in ("", "uvicorn.error", "otel_metrics")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


_HOSTILE = st.one_of(
    st.sampled_from(
        [
            "inf",
            "-inf",
            "nan",
            "1e20",
            "1e400",
            "-1",
            "0",
            "-0",
            "1e-300",
            "99999999999999999999999",
            "9" * 5000,
            "9999-12-31",
            "0001-01-01",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "99999999d",
            "1e300h",
            "\x00",
            "search\x00",
            "x" * 10_000,
            "duration",
            "attribute:\x00",
            "day",
        ]
    ),
    st.text(max_size=24),
    st.integers().map(str),
    st.floats().map(str),
)
_GET = [spec for spec in API_ROUTES if spec.method == "GET"]
# Per route; a longer run: HARDENING_EXAMPLES=1000.
_EXAMPLES = int(os.environ.get("HARDENING_EXAMPLES", "30"))


@pytest.mark.parametrize("spec", _GET, ids=[s.path for s in _GET])
def test_no_query_value_makes_a_server_error(dataset: Loaded, server_log: _Records, spec: Any) -> None:
    """Hypothesis over every GET route of the table: query and path values from a hostile corpus answer 2xx, 400
    naming a parameter, or 404; never 5xx, and nothing is logged with a traceback."""
    query = [p for p in spec.params if p.where == "query"]
    path = [p for p in spec.params if p.where == "path"]
    names = [p.name for p in spec.params]

    with serve(AnalyticsAPI(lambda: dataset.dsn)) as client:

        @settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(
            params=st.fixed_dictionaries({}, optional={p.name: _HOSTILE for p in query}),
            segments=st.fixed_dictionaries({p.name: _HOSTILE.filter(bool) for p in path}),
        )
        def check(params: dict[str, str], segments: dict[str, str]) -> None:
            url = spec.path
            for name, value in segments.items():
                url = url.replace("{" + name + "}", quote(value, safe=""))
            r = client.get(url, params=params)
            assert r.status_code < 500, (url, params, r.text)
            if r.status_code == 400:
                error = r.json()["error"]
                assert any(n in error for n in (*names, "since/until", "window", "service")), (params, error)

        check()
    assert not [r for r in server_log.records if r.exc_info], [r.getMessage() for r in server_log.records]


def test_the_named_attacks_are_400s(dataset: Loaded) -> None:
    with serve(AnalyticsAPI(lambda: dataset.dsn)) as client:
        for params, name in (
            ({"hours": "inf"}, "hours"),
            ({"hours": "nan"}, "hours"),
            ({"hours": "1e300"}, "hours"),
            ({"offset": "1e20"}, "offset"),
            ({"offset": "100000000000000000000"}, "offset"),
            ({"limit": "-5"}, "limit"),
            ({"service": "search\x00"}, "service"),
            ({"since": "99999999d"}, "since"),
            ({"until": "soon"}, "until"),
            ({"since": "0001-01-01"}, "since/until"),
        ):
            r = client.get("/performance", params=params)
            assert r.status_code == 400 and name in r.json()["error"], (params, r.text)
        assert client.get("/costs/correlation/" + quote("a\x00b", safe="")).status_code == 400
        assert client.get("/outliers", params={"threshold": "0", **_RAW}).status_code == 400
        # An empty filter value is a filter the per-operation caches cannot apply (was a 500: no tenant_id column).
        assert client.get("/trends", params={"tenant": ""}).status_code == 200
        assert client.get("/timeseries", params={"agent": "", "hours": "72"}).json()["items"] == []


_RAW = {"since": (END - timedelta(hours=12)).isoformat(), "until": END.isoformat()}


_JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.integers() | _HOSTILE,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_BUDGET_KEYS = ("scope", "name", "period", "amount_usd", "warning_ratio", "critical_ratio")


def test_no_body_makes_a_server_error(writable: tuple[httpx.Client, int, str], server_log: _Records) -> None:
    """Hypothesis over the JSON bodies of the changing routes: budgets (its keys with any JSON values, or any JSON)
    and acknowledgements answer 200, 400 or 404, never 5xx, nothing logged with a traceback."""
    client, alert_id, _ = writable
    budget = st.fixed_dictionaries({}, optional={k: _JSON for k in _BUDGET_KEYS}) | _JSON

    @settings(max_examples=_EXAMPLES * 4, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(budget=budget, ack=_JSON)
    def check(budget: Any, ack: Any) -> None:
        r = client.put("/budgets", content=json.dumps(budget), headers=JSON)
        assert r.status_code in (200, 400), (budget, r.text)
        r = client.post(f"/alerts/{alert_id}/ack", content=json.dumps(ack), headers=JSON)
        assert r.status_code in (200, 400, 404), (ack, r.text)

    check()
    assert not [r for r in server_log.records if r.exc_info], [r.getMessage() for r in server_log.records]
