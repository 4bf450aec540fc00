"""``ModelPrice.usd`` (integer arithmetic, every GenAI span) is exactly ``float`` of the Decimal cost."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.cost import PriceTable, Usage
from processors.cost.rates import ModelPrice, Tiered, parse_price


def _every_catalog_price() -> list[ModelPrice]:
    table = PriceTable.bundled()
    catalog = table.catalog
    assert catalog is not None
    return [
        parse_price(model.id, raw, strict=False)
        for provider in catalog.providers()
        for model in catalog.models(provider)
        for _, raw in model.history
    ]


_PRICES = _every_catalog_price()
_ODD = ModelPrice(  # more decimals than the integer path takes, tiers on some rates only, a request fee
    input=Tiered(Decimal("1.1"), ((1_000, Decimal("2.2")), (50_000, Decimal("0.000000000000000000000000003")))),
    output=Decimal("0.3333333"),
    cache_write_1h=Tiered(Decimal("7"), ((10, Decimal("8")),)),
    request=Decimal("0.0005"),
)


@st.composite
def _usages(draw: st.DrawFn) -> Usage:
    n_in = draw(st.integers(0, 3_000_000))
    read = draw(st.integers(0, n_in))
    write = draw(st.integers(0, n_in - read))
    n_out = draw(st.integers(0, 500_000))
    return Usage(n_in, n_out, read, write, draw(st.integers(0, write)), draw(st.integers(0, n_out)))


def test_the_catalog_holds_tiered_and_request_priced_models() -> None:
    assert any(isinstance(p.input, Tiered) for p in _PRICES)
    assert any(p.request is not None for p in _PRICES)
    assert len(_PRICES) > 500


@settings(max_examples=3000, deadline=None)
@given(price=st.sampled_from([*_PRICES, _ODD]), usage=_usages())
def test_usd_is_the_double_nearest_the_exact_cost(price: ModelPrice, usage: Usage) -> None:
    assert price.usd(usage.counts()) == float(price.cost(usage))
