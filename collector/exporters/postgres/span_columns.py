"""The columns of the sink's span tables, and which span attributes fill which ``spans`` column (docs/schema.md).

``ATTRIBUTE_COLUMNS`` is the one place an attribute-backed column is declared: its name, staging type, the attribute
keys it reads (the first one present with a value wins) and how the value is converted. ``SPAN_COLUMNS`` places them,
in this order, between the span's own fields and its attribute maps; ``traces.span_records`` fills rows from it.

A hot attribute leaves the ``attributes`` jsonb only when its column holds it losslessly (right type, in range) and
its key is one of the column's ``moves`` keys; otherwise the column gets the best conversion (or NULL, with a repair
note) and the attribute stays, so nothing the client sent is lost.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ._values import to_json

__all__ = [
    "ATTRIBUTE_COLUMNS",
    "EVENT_COLUMNS",
    "LINK_COLUMNS",
    "SPAN_COLUMNS",
    "TOKEN_COLUMN_INDEXES",
    "AttributeColumn",
    "cost_units",
    "span_position",
]

# (value, attribute key, repairs) -> (column value, lossless)
Converter = Callable[[Any, str, list[str]], tuple[Any, bool]]

_INT8_MIN, _INT8_MAX = -(2**63), 2**63 - 1
_INT4_MIN, _INT4_MAX = -(2**31), 2**31 - 1
_COST_LIMIT = 1e10  # numeric(20, 10)


def text(value: Any) -> str:
    """A value for a text column: strings as they are, anything else as its JSON text."""
    return value if isinstance(value, str) else to_json(value, "attribute", [])


def _as_int(value: Any, lo: int, hi: int) -> tuple[int | None, bool]:
    """(column value, lossless) for an integer column."""
    if isinstance(value, bool):
        return int(value), False
    if isinstance(value, int):
        return (value, True) if lo <= value <= hi else (None, False)
    if isinstance(value, float):
        if math.isfinite(value) and lo <= value <= hi:
            return int(value), value.is_integer()
        return None, False
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            try:
                f = float(value)
            except ValueError:
                return None, False
            return (int(f), False) if math.isfinite(f) and lo <= f <= hi else (None, False)
        return (number, False) if lo <= number <= hi else (None, False)
    return None, False


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        f = float(value)
    elif isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) else None


def cost_units(usd: float) -> int:
    """What numeric(20, 10) stores for the decimal the client wrote (``repr``, not the double's binary expansion),
    in units of 1e-10 USD: rounded half away from zero, as PostgreSQL rounds.

    The product ``usd * 1e10`` is within 2.2e-6 * |usd| of the exact scaled decimal, so below 1,000 USD and away from
    a tie its rounding is the exact one; anything else goes through Decimal.
    """
    scaled = usd * 1e10
    units = round(scaled)
    if -1000.0 < usd < 1000.0 and abs(abs(scaled - units) - 0.5) > 0.01:
        return units
    return int(Decimal(repr(usd)).scaleb(10).to_integral_value(ROUND_HALF_UP))


# -- converters: the common type first (an OTLP int is an int64, always a lossless bigint) -----------------------
def _label(value: Any, key: str, repairs: list[str]) -> tuple[Any, bool]:
    return (value if isinstance(value, str) else text(value)), False


def _bigint(value: Any, key: str, repairs: list[str]) -> tuple[Any, bool]:
    if type(value) is int:
        return value, True
    number, lossless = _as_int(value, _INT8_MIN, _INT8_MAX)
    if number is None:
        repairs.append(f"{key} not a bigint: column left NULL")
    return number, lossless


def _integer(value: Any, key: str, repairs: list[str]) -> tuple[Any, bool]:
    return _as_int(value, _INT4_MIN, _INT4_MAX)


def _cost(value: Any, key: str, repairs: list[str]) -> tuple[Any, bool]:
    """``cost.usd`` as an int count of 1e-10 USD (``cost_units``): ints sum exactly and cheaply in the rollups, and
    the writer's COPY dumps them as numeric(20, 10), which holds exactly those."""
    if type(value) is float and abs(value) < _COST_LIMIT:  # the common case (False for NaN and infinities)
        return cost_units(value), True
    amount = _as_float(value)
    if amount is None or abs(amount) >= _COST_LIMIT:
        repairs.append(f"{key} not a finite number below 1e10: column left NULL")
        return None, False
    return cost_units(amount), False


def _double(value: Any, key: str, repairs: list[str]) -> tuple[Any, bool]:
    if type(value) is float and math.isfinite(value):
        return value, True
    number = _as_float(value)
    if number is None:
        repairs.append(f"{key} not a finite number: column left NULL")
    return number, False


def _adjusted_count(value: Any, key: str, repairs: list[str]) -> tuple[Any, bool]:
    """``sampler.adjusted_count`` (``sampling``): a finite number >= 1; 1 is stored as NULL (counts once)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 1:
        return (float(value) if value > 1 else None), True
    repairs.append(f"{key} not a finite number >= 1: column left NULL")
    return None, False


@dataclass(frozen=True)
class AttributeColumn:
    """A ``spans`` column filled from span attributes.

    ``convert`` None: a text column. A string value moves into it; another type is copied as JSON text and stays in
    the attributes. Otherwise ``convert`` gives (column value, lossless) for the first of ``keys`` present with a
    value, and the attribute leaves the jsonb when lossless and its key is in ``moves``. A value of type ``exact``
    is taken as it is, losslessly, without calling ``convert`` (which must agree).
    """

    name: str
    type: str  # staging type (what binary COPY sends)
    keys: tuple[str, ...]
    convert: Converter | None = None
    moves: tuple[str, ...] = ()
    exact: builtins.type | None = None


ATTRIBUTE_COLUMNS: tuple[AttributeColumn, ...] = (
    AttributeColumn("correlation_id", "text", ("correlation.id",)),
    AttributeColumn("tenant_id", "text", ("tenant.id",)),
    AttributeColumn("user_id", "text", ("user.id",)),
    AttributeColumn("session_id", "text", ("session.id",)),
    AttributeColumn("agent_name", "text", ("gen_ai.agent.name",)),
    AttributeColumn("agent_role", "text", ("agent.role",)),
    AttributeColumn("feature", "text", ("feature.name",)),
    # Model and provider stay in the attributes (dashboards and the cost processor read them there).
    AttributeColumn("model", "text", ("gen_ai.response.model", "gen_ai.request.model"), _label, exact=str),
    AttributeColumn("provider", "text", ("gen_ai.provider.name", "gen_ai.system"), _label, exact=str),
    AttributeColumn(
        "input_tokens", "int8", ("gen_ai.usage.input_tokens",), _bigint, ("gen_ai.usage.input_tokens",), int
    ),
    AttributeColumn(
        "output_tokens", "int8", ("gen_ai.usage.output_tokens",), _bigint, ("gen_ai.usage.output_tokens",), int
    ),
    AttributeColumn("cost_usd", "numeric", ("cost.usd",), _cost, ("cost.usd",)),
    AttributeColumn("quality_score", "float8", ("quality.score",), _double, ("quality.score",)),
    AttributeColumn("error_type", "text", ("error.type",)),
    AttributeColumn("http_route", "text", ("http.route",)),
    # The deprecated http.status_code is read too, and kept as it came.
    AttributeColumn(
        "http_status_code",
        "int4",
        ("http.response.status_code", "http.status_code"),
        _integer,
        ("http.response.status_code",),
    ),
    # A head-sampled span's weight (sampling.py); without the attribute, from the span's tracestate.
    AttributeColumn(
        "adjusted_count", "float8", ("sampler.adjusted_count",), _adjusted_count, ("sampler.adjusted_count",)
    ),
)

# Positions in ATTRIBUTE_COLUMNS of the token counts (left in the attributes for a span folded into another).
TOKEN_COLUMN_INDEXES = frozenset(
    i for i, c in enumerate(ATTRIBUTE_COLUMNS) if c.name in ("input_tokens", "output_tokens")
)

# (column, staging type). Staging types are what binary COPY sends; timestamps travel as µs since the Unix epoch.
SPAN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("trace_id", "bytea"),
    ("span_id", "bytea"),
    ("parent_span_id", "bytea"),
    ("trace_state", "text"),
    ("start_time", "timestamptz"),
    ("end_time", "timestamptz"),
    ("duration_ms", "float8"),
    ("name", "text"),
    ("kind", "int2"),
    ("status_code", "int2"),
    ("status_message", "text"),
    ("service_name", "text"),
    ("scope_name", "text"),
    ("scope_version", "text"),
    ("operation", "text"),
    *((c.name, c.type) for c in ATTRIBUTE_COLUMNS),
    ("attributes", "jsonb"),
    ("resource_attributes", "jsonb"),
    ("flags", "int4"),
    ("dropped_attributes_count", "int4"),
    ("dropped_events_count", "int4"),
    ("dropped_links_count", "int4"),
)
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("trace_id", "bytea"),
    ("span_id", "bytea"),
    ("span_start_time", "timestamptz"),
    ("event_index", "int4"),
    ("time", "timestamptz"),
    ("name", "text"),
    ("service_name", "text"),
    ("exception_type", "text"),
    ("exception_message", "text"),
    ("exception_stacktrace", "text"),
    ("attributes", "jsonb"),
    ("dropped_attributes_count", "int4"),
)
LINK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("trace_id", "bytea"),
    ("span_id", "bytea"),
    ("span_start_time", "timestamptz"),
    ("link_index", "int4"),
    ("linked_trace_id", "bytea"),
    ("linked_span_id", "bytea"),
    ("trace_state", "text"),
    ("flags", "int4"),
    ("attributes", "jsonb"),
    ("dropped_attributes_count", "int4"),
)
_POSITIONS = {name: i for i, (name, _) in enumerate(SPAN_COLUMNS)}


def span_position(column: str) -> int:
    """The index of ``column`` in a ``SPAN_COLUMNS`` row."""
    return _POSITIONS[column]
