"""One call, one price across batches and processes: a priced span whose ``gen_ai.response.id`` another stored span
already holds the cost of is folded into that span when it is written.

The collector's cost processor (``processors.cost.dedup``) folds the spans of one call that pass through one process.
Spans of the same response reaching the sink through two processes (two collectors, an app exporting to two
pipelines) or far apart in time are each priced there. The sink claims each priced response id in ``llm_calls``
(migration 0027; primary key: the response id) in the transaction that stores the span: the first span stored holds
the call's cost, and a later one (in the same batch or any later one, from any process) is stored folded, as the
collector folds: ``cost_usd`` and the token columns NULL, its token counts kept in ``attributes`` with
``cost.duplicate_of`` = the holder's span id (hex). Concurrent writers are serialised by the primary key (an insert
waits for the other transaction's). The same span written again (redelivery) holds its own claim: not a duplicate.

Only priced spans claim: a span with tokens and no cost (the Anthropic SDK's own tracing of a call that is not
streamed reports no input tokens, so nothing prices it) is not folded here; its tokens may count next to the priced
span's when the two reach the sink through different processes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from ._values import dumps
from .span_columns import span_position

__all__ = ["DUPLICATE_OF_KEY", "RESPONSE_ID_KEY", "fold_repeated_calls"]

RESPONSE_ID_KEY = "gen_ai.response.id"
DUPLICATE_OF_KEY = "cost.duplicate_of"
_MARKER = f'"{RESPONSE_ID_KEY}":'
_COST, _INPUT, _OUTPUT, _ATTRIBUTES, _START = (
    span_position(c) for c in ("cost_usd", "input_tokens", "output_tokens", "attributes", "start_time")
)
_TOKENS = ((_INPUT, "gen_ai.usage.input_tokens"), (_OUTPUT, "gen_ai.usage.output_tokens"))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CLAIM = """
INSERT INTO llm_calls (response_id, trace_id, span_id, start_time)
SELECT * FROM unnest(%s::text[], %s::bytea[], %s::bytea[], %s::timestamptz[])
ON CONFLICT (response_id) DO NOTHING
RETURNING response_id
"""
_HOLDERS = "SELECT response_id, trace_id, span_id FROM llm_calls WHERE response_id = ANY(%s)"


def _response_id(row: tuple[Any, ...]) -> str | None:
    text = row[_ATTRIBUTES]
    if _MARKER not in text:  # the common case: one substring scan, no JSON parsing
        return None
    value = json.loads(text).get(RESPONSE_ID_KEY)
    return value if isinstance(value, str) and value else None


def _folded(row: tuple[Any, ...], holder_span_id: bytes) -> tuple[Any, ...]:
    attributes = json.loads(row[_ATTRIBUTES])
    for position, key in _TOKENS:
        if row[position] is not None:
            attributes.setdefault(key, row[position])
    attributes[DUPLICATE_OF_KEY] = holder_span_id.hex()
    out = list(row)
    out[_COST] = out[_INPUT] = out[_OUTPUT] = None
    out[_ATTRIBUTES] = dumps(attributes)
    return tuple(out)


def fold_repeated_calls(conn: psycopg.Connection[Any], records: Sequence[Any]) -> int:
    """Claim the response ids of the priced spans in ``records`` (call inside the transaction that stores them) and
    fold the spans whose response another span holds (``record.row`` replaced). Returns how many were folded."""
    first: dict[str, tuple[bytes, bytes]] = {}  # response id -> (trace id, span id) of its first priced span here
    priced: list[tuple[Any, str]] = []
    for record in records:
        row = record.row
        if row and row[_COST] is not None:
            response_id = _response_id(row)
            if response_id is not None:
                priced.append((record, response_id))
                first.setdefault(response_id, (row[0], row[1]))
    if not priced:
        return 0
    # In response id order: two writers claiming overlapping ids lock them in the same order (no deadlock).
    claims = sorted((rid, r.row) for r, rid in priced if first[rid] == (r.row[0], r.row[1]))
    ids = [rid for rid, _ in claims]
    won = {
        r[0]
        for r in conn.execute(
            _CLAIM,
            (
                ids,
                [row[0] for _, row in claims],
                [row[1] for _, row in claims],
                [_EPOCH + timedelta(microseconds=row[_START]) for _, row in claims],
            ),
        ).fetchall()
    }
    holders = {rid: spans for rid, spans in first.items() if rid in won}
    lost = [rid for rid in ids if rid not in won]
    if lost:  # claimed before (another batch or process), or by this very span (a redelivery)
        for rid, trace_id, span_id in conn.execute(_HOLDERS, (lost,)).fetchall():
            holders[rid] = (bytes(trace_id), bytes(span_id))
    folded = 0
    for record, rid in priced:
        holder = holders.get(rid)
        if holder is not None and holder != (record.row[0], record.row[1]):
            record.row = _folded(record.row, holder[1])
            folded += 1
    return folded
