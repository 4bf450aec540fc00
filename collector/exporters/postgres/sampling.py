"""Head-sampled spans weigh what they stand for: a span's adjusted count (1 / its sampling probability) and the
hourly rows of ``span_rollups_unsampled_1h`` (migration 0026) that add, per rollup key, what the spans sampling left
out are estimated to be: the sums of (adjusted count - 1) x value over the key's sampled spans.

The adjusted count comes from, in this order: the span attribute ``sampler.adjusted_count`` (OTEP 170, as set by
OpenTelemetry Go's consistent probability sampler), then OpenTelemetry's ``ot`` member of the W3C tracestate, as
consistent probability samplers write it (the Python SDK's ``composite_sampler``, the Collector's
``probabilistic_sampler`` in proportional mode): ``th:`` the rejection threshold T, up to 14 hex digits of a 56-bit
number, trailing zeros dropped, so the probability is (2^56 - T) / 2^56; or, in the older form of the
specification, ``p:`` with probability 2^-p. Spans sampled otherwise (``traceidratio`` without a threshold) carry
nothing a consumer can weigh by: they count once.

The tracestate is parsed here rather than with the SDK's ``OtelTraceState``: that lives in the SDK's private,
experimental ``_sampling_experimental`` package, and this runs per span on the sink's hot path (a substring test
when there is no ``ot`` member).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .rollups import ROLLUP_KEY_COLUMNS
from .span_columns import span_position

__all__ = [
    "ADJUSTED_COUNT_KEY",
    "UNSAMPLED_COLUMNS",
    "UNSAMPLED_TABLE",
    "from_trace_state",
    "inherit_weights",
    "unsampled_rows",
]

ADJUSTED_COUNT_KEY = "sampler.adjusted_count"
UNSAMPLED_TABLE = "span_rollups_unsampled_1h"
_THRESHOLD_BITS = 56
_MAX_THRESHOLD = 1 << _THRESHOLD_BITS
_MAX_TH_DIGITS = 14
_MAX_P = 62  # p = 63 means probability zero: nothing is sampled, so no span carries it

# (column, staging type) of a span_rollups_unsampled_1h row.
UNSAMPLED_COLUMNS: tuple[tuple[str, str], ...] = (
    *ROLLUP_KEY_COLUMNS,
    ("count", "float8"),
    ("errors", "float8"),
    ("input_tokens", "float8"),
    ("output_tokens", "float8"),
    ("cost_usd", "numeric"),
)


def _ot_member(trace_state: str) -> str | None:
    for member in trace_state.split(","):
        key, sep, value = member.strip().partition("=")
        if sep and key == "ot":
            return value
    return None


def from_trace_state(trace_state: str) -> float | None:
    """The adjusted count a W3C tracestate's ``ot`` member gives (``th:`` or ``p:``); None when it gives none, or
    gives 1 (probability 1), or is malformed."""
    if "ot=" not in trace_state:
        return None
    ot = _ot_member(trace_state)
    if not ot:
        return None
    for field in ot.split(";"):
        name, _, value = field.partition(":")
        if name == "th":
            if not 0 < len(value) <= _MAX_TH_DIGITS:
                return None
            try:
                threshold = int(value, 16) << (4 * (_MAX_TH_DIGITS - len(value)))
            except ValueError:
                return None
            if threshold <= 0 or threshold >= _MAX_THRESHOLD:
                return None  # probability 1 (count once), or 0 (no span carries it)
            return _MAX_THRESHOLD / (_MAX_THRESHOLD - threshold)
    for field in ot.split(";"):
        name, _, value = field.partition(":")
        if name == "p" and value.isdigit() and 0 < int(value) <= _MAX_P:
            return float(1 << int(value))
    return None


# Positions in a span_columns.SPAN_COLUMNS row.
_START, _STATUS, _SERVICE, _OPERATION, _WEIGHT = (
    span_position(c) for c in ("start_time", "status_code", "service_name", "operation", "adjusted_count")
)
_DIMS = {d: span_position(d) for d in ("tenant_id", "agent_name", "model")}
_INPUT, _OUTPUT, _COST = (span_position(c) for c in ("input_tokens", "output_tokens", "cost_usd"))
_HOUR_US = 3_600_000_000


def inherit_weights(records: Sequence[Any]) -> None:
    """Spans of a batch with no weight take the weight of their trace's weighted spans in the same batch.

    Head sampling decides per trace, so a span stands for as many spans as its trace does. The Python SDK's
    ``composite_sampler`` (1.45) writes the threshold on a trace's root span only: its children are sampled with
    the root (parent-based) but their tracestate is empty, since the SDK's tracer does not hand the parent's
    tracestate to the sampler. Children end first and are exported with or just before their root; spans whose
    weighted span came in another batch count once.
    """
    weights: dict[bytes, float] = {}
    for record in records:
        weight = record.row[_WEIGHT] if record.row else None
        if weight:
            weights.setdefault(record.row[0], weight)
    if not weights:
        return
    for record in records:
        row = record.row
        if row and not row[_WEIGHT]:
            weight = weights.get(row[0])
            if weight:
                record.row = (*row[:_WEIGHT], weight, *row[_WEIGHT + 1 :])


def unsampled_rows(rows: Sequence[tuple[Any, ...]], dimensions: Sequence[str]) -> list[tuple[Any, ...]]:
    """``span_rollups_unsampled_1h`` rows (``UNSAMPLED_COLUMNS``) of newly inserted span rows: per hourly rollup key
    (the same key as ``rollups.aggregate``), (adjusted count - 1) x count, errors, tokens and cost of its sampled
    spans. Empty when none was sampled (the common case: one pass over the weights)."""
    if not any(row[_WEIGHT] for row in rows):
        return []
    positions = [_DIMS[d] if d in dimensions else None for d in ("tenant_id", "agent_name", "model")]
    out: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        weight = row[_WEIGHT]
        if not weight:
            continue
        extra = weight - 1.0
        start = row[_START]
        key = (
            start - start % _HOUR_US,
            row[_SERVICE],
            row[_OPERATION],
            row[_STATUS],
            *("" if p is None else row[p] or "" for p in positions),
        )
        acc = out.setdefault(key, [0.0, 0.0, 0.0, 0.0, 0.0])
        acc[0] += extra
        if row[_STATUS] == 2:
            acc[1] += extra
        acc[2] += extra * (row[_INPUT] or 0)
        acc[3] += extra * (row[_OUTPUT] or 0)
        acc[4] += extra * (row[_COST] or 0)  # cost_usd travels as an int count of 1e-10 USD
    return [(*key, *acc[:4], round(acc[4])) for key, acc in sorted(out.items())]
