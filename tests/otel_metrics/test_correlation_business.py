"""correlation_scope and business_context: generation, validation, decorators, propagation through baggage."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

from opentelemetry import baggage, propagate

from otel_metrics import business_context, correlation_scope, get_correlation_id

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_generates_uuid4_and_restores_previous() -> None:
    assert get_correlation_id() is None
    with correlation_scope() as cid:
        assert UUID4.match(cid)
        assert get_correlation_id() == cid
        with correlation_scope("inner.id:1") as inner:
            assert inner == get_correlation_id() == "inner.id:1"
        assert get_correlation_id() == cid
    assert get_correlation_id() is None


def test_invalid_ids_are_replaced_and_logged(caplog: Any) -> None:
    for bad in ("has space", "x" * 129, "", "semi;colon", "ünïcode", 42, b"bytes"):
        with correlation_scope(bad) as cid:  # type: ignore[arg-type]
            assert UUID4.match(cid), bad
            assert get_correlation_id() == cid
    assert caplog.text.count("invalid correlation id") == 7
    with correlation_scope("a" * 128) as cid:
        assert cid == "a" * 128


def test_decorator_gives_each_call_its_own_id() -> None:
    @correlation_scope()
    def f() -> str | None:
        return get_correlation_id()

    @correlation_scope()
    async def g() -> str | None:
        return get_correlation_id()

    a, b = f(), f()
    assert a and b and a != b and uuid.UUID(a)
    c = asyncio.run(g())
    assert c and c not in (a, b)
    assert get_correlation_id() is None


def test_id_travels_in_w3c_baggage() -> None:
    with correlation_scope("req-7"):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    assert "correlation.id=req-7" in carrier["baggage"]
    ctx = propagate.extract(carrier)
    assert get_correlation_id_from(ctx) == "req-7"


def get_correlation_id_from(ctx: Any) -> Any:
    return baggage.get_baggage("correlation.id", ctx)


def test_business_context_local_by_default_propagated_on_request() -> None:
    custom: dict[str, Any] = {"custom.key": 3}  # a key that is no Python name
    with business_context(tenant_id="acme", **custom) as attrs:
        assert attrs == {"tenant.id": "acme", "custom.key": 3}
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        assert "tenant.id" not in carrier.get("baggage", "")
    with business_context(propagate=True, user_id="u1"):
        carrier = {}
        propagate.inject(carrier)
        assert "user.id=u1" in carrier["baggage"]


def test_business_context_as_decorator_and_wrong_types(caplog: Any) -> None:
    from processors.business import get_business_attributes

    @business_context(feature_name="search", agent_name="planner")
    def f() -> dict[str, Any]:
        return get_business_attributes()

    assert f() == {"feature.name": "search", "gen_ai.agent.name": "planner"}
    assert get_business_attributes() == {}
    unsupported: dict[str, Any] = {"weird": {"a": 1}, "none": None}
    with business_context(**unsupported) as attrs:
        assert attrs == {"weird": "{'a': 1}"}
    assert "unsupported type dict" in caplog.text
