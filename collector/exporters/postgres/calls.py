"""One call, one price across batches and processes: a span whose ``gen_ai.response.id`` another stored span already
holds the cost (or the tokens) of is folded into that span when it is written.

The collector's cost processor (``processors.cost.dedup``) folds the spans of one call that pass through one process.
Spans of the same response reaching the sink through two processes (two collectors, an app exporting to two
pipelines) or far apart in time are each priced there. The sink claims each priced response id in ``llm_calls``
(migration 0027; primary key: the response id) in the transaction that stores the span: the first span stored holds
the call's cost, and a later one (in the same batch or any later one, from any process) is stored folded, as the
collector folds: ``cost_usd`` and the token columns NULL, its token counts kept in ``attributes`` with
``cost.duplicate_of`` = the holder's span id (hex). Concurrent writers are serialised by the primary key (an insert
waits for the other transaction's). The same span written again (redelivery) holds its own claim: not a duplicate.

A span with tokens and no cost (the Anthropic SDK's own tracing of a call that is not streamed reports no input
tokens, so nothing prices it) claims too (``priced`` false, migration 0029), so the call's tokens count once whatever
the order: stored after the holder, it is folded like a priced duplicate; stored first, it holds the claim until a
priced span of the call is stored, which takes the claim over (the priced span's counts describe the call) while the
stored unpriced span is folded where it is (an ``UPDATE``) and its tokens moved out of the rollups (``_moves``).
A span folded into an unpriced holder keeps that holder's span id in ``cost.duplicate_of`` after a take-over.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from ._moves import RETURNING, move_rollups, span_rows
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
INSERT INTO llm_calls (response_id, trace_id, span_id, start_time, priced)
SELECT * FROM unnest(%s::text[], %s::bytea[], %s::bytea[], %s::timestamptz[], %s::boolean[])
ON CONFLICT (response_id) DO NOTHING
RETURNING response_id
"""
# Locked: a priced span of this batch may take an unpriced holder's claim over.
_HOLDERS = """
SELECT response_id, trace_id, span_id, start_time, priced FROM llm_calls WHERE response_id = ANY(%s)
ORDER BY response_id FOR UPDATE
"""
_TAKE_OVER = """
UPDATE llm_calls AS c SET trace_id = n.trace_id, span_id = n.span_id, start_time = n.start_time, priced = true
FROM unnest(%s::text[], %s::bytea[], %s::bytea[], %s::timestamptz[]) AS n(response_id, trace_id, span_id, start_time)
WHERE c.response_id = n.response_id
"""
# The unpriced holders a priced span took over from, folded where they are stored, as ``_folded`` folds; returns
# what the rollups need of each, the old token counts last.
_FOLD_STORED = f"""
WITH f AS (
    SELECT * FROM unnest(%s::bytea[], %s::bytea[], %s::timestamptz[], %s::bytea[])
        AS f(trace_id, span_id, start_time, holder)
), old AS (
    SELECT s.trace_id, s.span_id, s.start_time, s.input_tokens, s.output_tokens, f.holder
    FROM spans AS s JOIN f USING (trace_id, span_id, start_time)
    WHERE s.cost_usd IS NULL AND (s.input_tokens IS NOT NULL OR s.output_tokens IS NOT NULL)
    FOR UPDATE OF s
)
UPDATE spans AS s
SET input_tokens = NULL, output_tokens = NULL,
    attributes = jsonb_strip_nulls(jsonb_build_object('{_TOKENS[0][1]}', old.input_tokens,
                                                      '{_TOKENS[1][1]}', old.output_tokens))
                 || s.attributes || jsonb_build_object('{DUPLICATE_OF_KEY}', encode(old.holder, 'hex'))
FROM old
WHERE s.trace_id = old.trace_id AND s.span_id = old.span_id AND s.start_time = old.start_time
{RETURNING}, old.input_tokens, old.output_tokens"""


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


def _counted(row: tuple[Any, ...]) -> bool:
    """Priced, or with tokens: a span whose counts a duplicate would repeat."""
    return bool(row) and (row[_COST] is not None or row[_INPUT] is not None or row[_OUTPUT] is not None)


def _start(row: tuple[Any, ...]) -> datetime:
    return _EPOCH + timedelta(microseconds=row[_START])


def _claim(
    conn: psycopg.Connection[Any], first: dict[str, tuple[Any, ...]], dimensions: Sequence[str]
) -> dict[str, tuple[bytes, bytes]]:
    """Claim each response id for its span here (``first``); the holder of each: (trace id, span id)."""
    # In response id order: two writers claiming overlapping ids lock them in the same order (no deadlock).
    claims = sorted(first.items())
    ids = [rid for rid, _ in claims]
    columns = [[row[0] for _, row in claims], [row[1] for _, row in claims], [_start(row) for _, row in claims]]
    won = {r[0] for r in conn.execute(_CLAIM, (ids, *columns, [row[_COST] is not None for _, row in claims]))}
    holders = {rid: (row[0], row[1]) for rid, row in claims if rid in won}
    lost = [rid for rid in ids if rid not in won]
    if not lost:
        return holders
    taken: list[tuple[str, tuple[Any, ...], tuple[bytes, bytes, datetime]]] = []
    for rid, trace_id, span_id, start, priced in conn.execute(_HOLDERS, (lost,)).fetchall():
        row = first[rid]
        holder = (bytes(trace_id), bytes(span_id))
        if not priced and row[_COST] is not None and holder != (row[0], row[1]):
            taken.append((rid, row, (*holder, start)))  # a priced span holds the call's counts, not an unpriced one
            holder = (row[0], row[1])
        holders[rid] = holder  # claimed before (another batch or process), or by this very span (a redelivery)
    if taken:
        _take_over(conn, taken, dimensions)
    return holders


def _take_over(
    conn: psycopg.Connection[Any],
    taken: list[tuple[str, tuple[Any, ...], tuple[bytes, bytes, datetime]]],
    dimensions: Sequence[str],
) -> None:
    """Hand the calls ``taken`` (response id, the priced row here, the stored unpriced holder) to the priced rows,
    fold the stored holders and move their tokens out of the rollups."""
    rows = [row for _, row, _ in taken]
    conn.execute(
        _TAKE_OVER, ([t[0] for t in taken], [r[0] for r in rows], [r[1] for r in rows], [_start(r) for r in rows])
    )
    olds = [old for _, _, old in taken]
    returned = conn.execute(
        _FOLD_STORED, ([o[0] for o in olds], [o[1] for o in olds], [o[2] for o in olds], [r[1] for r in rows])
    ).fetchall()
    after = span_rows([r[:-2] for r in returned])
    before = []
    for row, returned_row in zip(after, returned, strict=True):
        old = list(row)
        old[_INPUT], old[_OUTPUT] = returned_row[-2], returned_row[-1]
        before.append(tuple(old))
    move_rollups(conn, before, after, dimensions)


def fold_repeated_calls(conn: psycopg.Connection[Any], records: Sequence[Any], dimensions: Sequence[str]) -> int:
    """Claim the response ids of the spans in ``records`` that are priced or have tokens (call inside the
    transaction that stores them) and fold the spans whose response another span holds (``record.row`` replaced);
    a priced span takes over a call held by an unpriced one, which is folded where it is stored. Returns how many
    spans were folded here."""
    first: dict[str, tuple[Any, ...]] = {}  # response id -> its holder here: the first priced span, else the first
    counted: list[tuple[Any, str]] = []
    for record in records:
        row = record.row
        if _counted(row):
            response_id = _response_id(row)
            if response_id is not None:
                counted.append((record, response_id))
                held = first.get(response_id)
                if held is None or (held[_COST] is None and row[_COST] is not None):
                    first[response_id] = row
    if not counted:
        return 0
    holders = _claim(conn, first, dimensions)
    folded = 0
    for record, rid in counted:
        holder = holders.get(rid)
        if holder is not None and holder != (record.row[0], record.row[1]):
            record.row = _folded(record.row, holder[1])
            folded += 1
    return folded
