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

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from ._dumpers import copy_rows
from .rollups import ROLLUP_KEY_COLUMNS
from .span_columns import span_position

__all__ = [
    "ADJUSTED_COUNT_KEY",
    "UNSAMPLED_COLUMNS",
    "UNSAMPLED_TABLE",
    "from_trace_state",
    "inherit_weights",
    "spread_trace_weights",
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
    ("requests", "float8"),
    ("roots", "float8"),
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
_PARENT, _KIND = span_position("parent_span_id"), span_position("kind")
_SERVER_KIND = 2  # as in rollups: a root or SERVER span is a request into its service; a root, its trace's entry
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
    (the same key as ``rollups.aggregate``), (adjusted count - 1) x count, errors, tokens, cost, requests and roots
    of its sampled spans. Empty when none was sampled (the common case: one pass over the weights)."""
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
        acc = out.setdefault(key, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        acc[0] += extra
        if row[_STATUS] == 2:
            acc[1] += extra
        acc[2] += extra * (row[_INPUT] or 0)
        acc[3] += extra * (row[_OUTPUT] or 0)
        acc[4] += extra * (row[_COST] or 0)  # cost_usd travels as an int count of 1e-10 USD
        if row[_PARENT] is None:
            acc[5] += extra
            acc[6] += extra
        elif row[_KIND] == _SERVER_KIND:
            acc[5] += extra
    return [(*key, *acc[:4], round(acc[4]), acc[5], acc[6]) for key, acc in sorted(out.items())]


# Seconds after weighted spans were last stored (by this process, or by any: span_rollups_unsampled_1h, checked at
# most every _RECHECK seconds) during which batches look up their traces' stored weights: a sink that never sees
# sampled spans never pays for the lookup.
_WEIGHTS_SEEN_FOR = 3600.0
_RECHECK = 60.0
_weights_seen_at = -_WEIGHTS_SEEN_FOR
_checked_at = -_RECHECK
_ANY_RECENT = "SELECT 1 FROM span_rollups_unsampled_1h WHERE bucket_start >= now() - interval '1 hour' LIMIT 1"


def _weights_recent(conn: psycopg.Connection[Any], weighted_here: bool) -> bool:
    global _weights_seen_at, _checked_at
    now = time.monotonic()
    if weighted_here:
        _weights_seen_at = now
    elif now - _weights_seen_at > _WEIGHTS_SEEN_FOR and now - _checked_at > _RECHECK:
        _checked_at = now
        if conn.execute(_ANY_RECENT).fetchone() is not None:
            _weights_seen_at = now
    return now - _weights_seen_at <= _WEIGHTS_SEEN_FOR


_NEAR = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Priced spans of the given traces stored without a weight take their trace's (its root's, else its earliest
# weighted span's); returns what span_rollups_unsampled_1h needs of them.
_SPREAD = """
WITH w AS (
    SELECT DISTINCT ON (trace_id) trace_id, adjusted_count FROM spans
    WHERE trace_id = ANY(%(traces)s) AND adjusted_count IS NOT NULL AND start_time >= %(lo)s AND start_time < %(hi)s
    ORDER BY trace_id, parent_span_id IS NULL DESC, start_time
)
UPDATE spans AS s SET adjusted_count = w.adjusted_count
FROM w
WHERE s.trace_id = w.trace_id AND s.adjusted_count IS NULL AND s.cost_usd IS NOT NULL
  AND s.start_time >= %(lo)s AND s.start_time < %(hi)s
RETURNING (extract(epoch FROM s.start_time) * 1000000)::bigint, s.status_code, s.service_name, s.operation,
          s.tenant_id, s.agent_name, s.model, s.input_tokens, s.output_tokens, (s.cost_usd * 10000000000)::bigint,
          s.adjusted_count, s.parent_span_id, s.kind
"""
_RETURNED = (
    _START, _STATUS, _SERVICE, _OPERATION, _DIMS["tenant_id"], _DIMS["agent_name"], _DIMS["model"], _INPUT, _OUTPUT,
    _COST, _WEIGHT, _PARENT, _KIND,
)  # fmt: skip


def spread_trace_weights(conn: psycopg.Connection[Any], records: Sequence[Any], dimensions: Sequence[str]) -> int:
    """After a batch is stored: priced spans stored without a weight whose trace now has a weighted span (stored in
    another batch, before or after them) take its weight, and span_rollups_unsampled_1h gets what they stand for, in
    one transaction. ``inherit_weights`` did it within the batch; this covers a trace's spans exported in different
    batches (an agent's LLM calls end, and are exported, long before its request's root span). Only when this
    sink (any process) has stored weighted spans in the last hour. Returns how many spans took a weight."""
    rows = [r.row for r in records if r.row]
    weighted = {row[0] for row in rows if row[_WEIGHT]}
    if not _weights_recent(conn, bool(weighted)):
        return 0
    traces = weighted | {row[0] for row in rows if not row[_WEIGHT] and row[_COST] is not None}
    if not traces:
        return 0
    starts = [row[_START] for row in rows if row[0] in traces]
    lo = _EPOCH + timedelta(microseconds=min(starts)) - _NEAR
    hi = _EPOCH + timedelta(microseconds=max(starts)) + _NEAR
    with conn.transaction():
        returned = conn.execute(_SPREAD, {"traces": sorted(traces), "lo": lo, "hi": hi}).fetchall()
        if not returned:
            return 0
        spans = []
        for values in returned:
            row: list[Any] = [None] * (max(_RETURNED) + 1)
            for position, value in zip(_RETURNED, values, strict=True):
                row[position] = value
            spans.append(tuple(row))
        copy_rows(conn, UNSAMPLED_TABLE, UNSAMPLED_COLUMNS, unsampled_rows(spans, dimensions))
    return len(returned)
