"""Trace search and whole-trace reads over the raw ``spans`` table (and ``span_events`` / ``span_links``).

A search finds the traces with a span matching the span-level filters (window, service, operation, tenant, user,
agent, model, correlation id, trace id, errors), newest first, then summarises each whole trace and applies the
trace-level ranges (duration, cost). Without trace-level ranges only one page of traces is summarised. Windows are
searched from their end backwards, so the newest page of a month costs about an hour of spans. A trace id or
correlation id is an indexed lookup and ignores the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ._sql import filter_clauses
from .window import NO_FILTERS, Filters, TimeWindow

__all__ = [
    "MAX_TRACE_SPANS",
    "SpanView",
    "Timeline",
    "TimelineSpan",
    "TraceDetail",
    "TraceQuery",
    "TraceSummary",
    "parse_span_id",
    "parse_trace_id",
    "read_span",
    "read_timeline",
    "read_trace",
    "search_traces",
]

# A trace page shows at most this many spans (the rest are counted, not shown).
MAX_TRACE_SPANS = 20_000
# Spans of a found trace are looked up this far around the search window (traces outlive their first span).
TRACE_MARGIN = timedelta(days=1)
# A search reads the window's last hour first, then four times more each round until a page is full.
FIRST_CHUNK = timedelta(hours=1)
# Related traces (sharing a correlation id) listed on a trace page.
MAX_RELATED = 50
SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
STATUSES = ("unset", "ok", "error")
# Hot columns the sink moved out of `attributes` (docs/schema.md), shown again under their attribute names.
_HOT_ATTRIBUTES = {
    "correlation_id": "correlation.id",
    "tenant_id": "tenant.id",
    "user_id": "user.id",
    "session_id": "session.id",
    "agent_name": "gen_ai.agent.name",
    "agent_role": "agent.role",
    "feature": "feature.name",
    "error_type": "error.type",
    "http_route": "http.route",
    "http_status_code": "http.response.status_code",
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "cost_usd": "cost.usd",
    "quality_score": "quality.score",
}


def parse_trace_id(text: str) -> bytes:
    """A W3C trace id: 32 hex digits (case-insensitive, not all zero)."""
    value = text.strip().lower()
    if len(value) != 32 or any(c not in "0123456789abcdef" for c in value) or value == "0" * 32:
        raise ValueError(f"trace_id: expected 32 hex digits, got {text!r}")
    return bytes.fromhex(value)


@dataclass(frozen=True)
class TraceQuery:
    window: TimeWindow
    filters: Filters = NO_FILTERS
    correlation_id: str | None = None
    trace_id: str | None = None
    errors_only: bool = False
    min_duration_ms: float | None = None
    max_duration_ms: float | None = None
    min_cost_usd: float | None = None
    max_cost_usd: float | None = None

    def validate(self) -> None:
        if self.trace_id is not None:
            parse_trace_id(self.trace_id)
        for low, high, name in (
            (self.min_duration_ms, self.max_duration_ms, "duration"),
            (self.min_cost_usd, self.max_cost_usd, "cost"),
        ):
            if low is not None and high is not None and low > high:
                raise ValueError(f"{name}: the minimum ({low:g}) is above the maximum ({high:g})")

    @property
    def ranged(self) -> bool:
        """Filtered by whole-trace duration or cost (known only once a trace is summarised)."""
        return any(
            v is not None for v in (self.min_duration_ms, self.max_duration_ms, self.min_cost_usd, self.max_cost_usd)
        )

    @property
    def by_id(self) -> bool:
        """Looked up by an indexed id: the window does not apply."""
        return self.trace_id is not None or self.correlation_id is not None


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    start_time: datetime
    end_time: datetime
    duration_ms: float
    spans: int
    errors: int
    services: str  # comma-separated, sorted
    root_service: str
    root_name: str
    tenant: str | None
    correlation_id: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass(frozen=True)
class SpanView:
    span_id: str
    parent_span_id: str | None
    depth: int
    name: str
    service: str
    kind: str
    start_time: datetime
    end_time: datetime
    offset_ms: float  # from the trace's start
    duration_ms: float
    status: str  # unset | ok | error
    status_message: str | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str | None
    events: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TraceDetail:
    summary: TraceSummary
    spans: list[SpanView]  # depth first, children by start time
    truncated: int  # spans not shown (beyond MAX_TRACE_SPANS)
    correlation_ids: list[str]
    related: list[TraceSummary]  # other traces sharing a correlation id, newest first


def _span_where(q: TraceQuery) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = []
    params: list[Any] = []
    if not q.by_id:
        parts += [sql.SQL("start_time >= %s"), sql.SQL("start_time < %s")]
        params += [q.window.start, q.window.end]
    clauses, values = filter_clauses(q.filters)
    parts += clauses
    params += values
    if q.trace_id is not None:
        parts.append(sql.SQL("trace_id = %s"))
        params.append(parse_trace_id(q.trace_id))
    if q.correlation_id is not None:
        parts.append(sql.SQL("correlation_id = %s"))
        params.append(q.correlation_id)
    if q.errors_only:
        parts.append(sql.SQL("status_code = 2"))
    return sql.SQL(" AND ").join(parts or [sql.SQL("true")]), params


def _trace_having(q: TraceQuery) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = []
    params: list[Any] = []
    for value, op, column in (
        (q.min_duration_ms, ">=", "duration_ms"),
        (q.max_duration_ms, "<=", "duration_ms"),
        (q.min_cost_usd, ">=", "cost_usd"),
        (q.max_cost_usd, "<=", "cost_usd"),
    ):
        if value is not None:
            parts.append(sql.SQL("{} {} %s").format(sql.Identifier(column), sql.SQL(op)))
            params.append(value)
    return sql.SQL(" AND ").join(parts or [sql.SQL("true")]), params


# Whole-trace totals for the trace ids in `hit`; the root is the earliest span without a parent, else the earliest.
_SUMMARY = sql.SQL(
    "SELECT trace_id, min(start_time) AS start_time, max(end_time) AS end_time,"
    " extract(epoch FROM max(end_time) - min(start_time))::float8 * 1000 AS duration_ms,"
    " count(*)::bigint AS spans, count(*) FILTER (WHERE status_code = 2)::bigint AS errors,"
    " string_agg(DISTINCT service_name, ',' ORDER BY service_name) AS services,"
    " (array_agg(service_name ORDER BY parent_span_id IS NOT NULL, start_time))[1] AS root_service,"
    " (array_agg(name ORDER BY parent_span_id IS NOT NULL, start_time))[1] AS root_name,"
    " min(tenant_id) AS tenant, min(correlation_id) AS correlation_id,"
    " coalesce(sum(input_tokens), 0)::bigint AS input_tokens,"
    " coalesce(sum(output_tokens), 0)::bigint AS output_tokens, coalesce(sum(cost_usd), 0)::float8 AS cost_usd"
    " FROM spans WHERE trace_id = ANY({ids}) {bounds} GROUP BY trace_id"
)


def _summaries(
    conn: psycopg.Connection[Any], trace_ids: list[bytes], window: TimeWindow | None
) -> list[dict[str, Any]]:
    bounds: sql.Composable = sql.SQL("")
    params: list[Any] = [trace_ids]
    if window is not None:
        bounds = sql.SQL("AND start_time >= %s AND start_time < %s")
        params += [window.start - TRACE_MARGIN, window.end + TRACE_MARGIN]
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_SUMMARY.format(ids=sql.SQL("%s"), bounds=bounds), params)
        return cur.fetchall()


def _summary(row: dict[str, Any]) -> TraceSummary:
    return TraceSummary(
        trace_id=bytes(row["trace_id"]).hex(),
        start_time=row["start_time"],
        end_time=row["end_time"],
        duration_ms=float(row["duration_ms"]),
        spans=int(row["spans"]),
        errors=int(row["errors"]),
        services=row["services"] or "",
        root_service=row["root_service"] or "",
        root_name=row["root_name"] or "",
        tenant=row["tenant"],
        correlation_id=row["correlation_id"],
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cost_usd=float(row["cost_usd"]),
    )


def _page(conn: psycopg.Connection[Any], q: TraceQuery, limit: int, offset: int) -> list[TraceSummary]:
    """One page of ``q`` over exactly its window."""
    where, params = _span_where(q)
    hit = sql.SQL(
        "SELECT trace_id FROM spans WHERE {} GROUP BY trace_id ORDER BY max(start_time) DESC, trace_id"
    ).format(where)
    if not q.ranged:
        rows = conn.execute(sql.Composed([hit, sql.SQL(" LIMIT %s OFFSET %s")]), [*params, limit, offset]).fetchall()
        order = {bytes(r[0]).hex(): i for i, r in enumerate(rows)}
        found = [_summary(r) for r in _summaries(conn, [bytes(r[0]) for r in rows], None if q.by_id else q.window)]
        return sorted(found, key=lambda t: order[t.trace_id])
    having, having_params = _trace_having(q)
    bounds: sql.Composable = sql.SQL("")
    bound_params: list[Any] = []
    if not q.by_id:
        bounds = sql.SQL("AND start_time >= %s AND start_time < %s")
        bound_params = [q.window.start - TRACE_MARGIN, q.window.end + TRACE_MARGIN]
    query = sql.SQL(
        "SELECT * FROM ({summary}) AS t WHERE {having} ORDER BY start_time DESC, trace_id LIMIT %s OFFSET %s"
    ).format(summary=_SUMMARY.format(ids=sql.SQL("ARRAY({})").format(hit), bounds=bounds), having=having)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, [*params, *bound_params, *having_params, limit, offset])
        return [_summary(r) for r in cur.fetchall()]


def search_traces(
    conn: psycopg.Connection[Any], q: TraceQuery, *, limit: int = 50, offset: int = 0
) -> list[TraceSummary]:
    """Traces matching ``q``, newest first (by their latest matching span; with duration or cost ranges, by their
    start), one page. The window is searched from its end backwards, FIRST_CHUNK first and four times longer
    each round until the page is full: a month's newest traces cost an hour of spans, not a month (there is no
    B-tree on start_time alone to walk backwards). A trace or correlation id is one indexed lookup."""
    q.validate()
    if q.by_id:
        return _page(conn, q, limit, offset)
    span = FIRST_CHUNK
    while True:
        start = max(q.window.start, q.window.end - span)
        found = _page(conn, replace(q, window=TimeWindow(start, q.window.end)), limit, offset)
        if len(found) >= limit or start == q.window.start:
            return found
        span *= 4


_SPAN_COLUMNS = sql.SQL(
    "span_id, parent_span_id, name, service_name, kind, start_time, end_time, duration_ms, status_code,"
    " status_message, model, input_tokens, output_tokens, cost_usd::float8 AS cost_usd, scope_name, correlation_id,"
    " tenant_id, user_id, session_id, agent_name, agent_role, feature, error_type, http_route, http_status_code,"
    " quality_score, "
)
_DETAILS = sql.SQL("attributes, resource_attributes")


def _attributes(row: dict[str, Any]) -> dict[str, Any]:
    attributes = dict(row["attributes"] or {})
    for column, name in _HOT_ATTRIBUTES.items():
        if row[column] is not None and name not in attributes:
            attributes[name] = row[column]
    return dict(sorted(attributes.items()))


def _tree_order(rows: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Depth first, children by start time; spans whose parent is missing are roots."""
    ids = {r["span_id"] for r in rows}
    children: dict[bytes | None, list[dict[str, Any]]] = {}
    for r in rows:  # rows come sorted by start time
        parent = r["parent_span_id"]
        children.setdefault(parent if parent in ids else None, []).append(r)
    out: list[tuple[int, dict[str, Any]]] = []
    stack = [(0, r) for r in reversed(children.get(None, []))]
    seen: set[bytes] = set()
    while stack:
        depth, r = stack.pop()
        span_id = r["span_id"]
        if span_id in seen:  # a span listed as its own ancestor: shown once
            continue
        seen.add(span_id)
        out.append((depth, r))
        for child in reversed(children.get(span_id, ())):
            stack.append((depth + 1, child))
    out.extend((0, r) for r in rows if r["span_id"] not in seen)  # cycles without a root
    return out


def _one_span(span_id: bytes | None) -> tuple[sql.Composable, list[Any]]:
    return (sql.SQL(" AND span_id = %s"), [span_id]) if span_id is not None else (sql.SQL(""), [])


def _events(
    conn: psycopg.Connection[Any], trace_id: bytes, span_id: bytes | None = None
) -> dict[bytes, list[dict[str, Any]]]:
    out: dict[bytes, list[dict[str, Any]]] = {}
    only, params = _one_span(span_id)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            sql.SQL(
                "SELECT span_id, time, name, exception_type, exception_message, exception_stacktrace, attributes"
                " FROM span_events WHERE trace_id = %s{} ORDER BY span_id, event_index"
            ).format(only),
            [trace_id, *params],
        )
        for r in cur:
            out.setdefault(bytes(r.pop("span_id")), []).append(r)
    return out


def _links(
    conn: psycopg.Connection[Any], trace_id: bytes, span_id: bytes | None = None
) -> dict[bytes, list[dict[str, Any]]]:
    out: dict[bytes, list[dict[str, Any]]] = {}
    only, params = _one_span(span_id)
    rows = conn.execute(
        sql.SQL(
            "SELECT span_id, linked_trace_id, linked_span_id, attributes FROM span_links WHERE trace_id = %s{}"
            " ORDER BY span_id, link_index"
        ).format(only),
        [trace_id, *params],
    ).fetchall()
    for span_id, linked_trace, linked_span, attributes in rows:
        out.setdefault(bytes(span_id), []).append(
            {"trace_id": bytes(linked_trace).hex(), "span_id": bytes(linked_span).hex(), "attributes": attributes}
        )
    return out


def _span_view(
    depth: int, r: dict[str, Any], start: datetime, events: list[dict[str, Any]], links: list[dict[str, Any]]
) -> SpanView:
    exceptions = [
        {
            "time": e["time"],
            "type": e["exception_type"],
            "message": e["exception_message"],
            "stacktrace": e["exception_stacktrace"],
        }
        for e in events
        if e["name"] == "exception"
    ]
    plain = [
        {
            "time": e["time"],
            "offset_ms": (e["time"] - start).total_seconds() * 1000.0,
            "name": e["name"],
            "attributes": e["attributes"] or {},
        }
        for e in events
        if e["name"] != "exception"
    ]
    return SpanView(
        span_id=bytes(r["span_id"]).hex(),
        parent_span_id=bytes(r["parent_span_id"]).hex() if r["parent_span_id"] is not None else None,
        depth=depth,
        name=r["name"],
        service=r["service_name"],
        kind=SPAN_KINDS[r["kind"]] if 0 <= r["kind"] < len(SPAN_KINDS) else str(r["kind"]),
        start_time=r["start_time"],
        end_time=r["end_time"],
        offset_ms=(r["start_time"] - start).total_seconds() * 1000.0,
        duration_ms=float(r["duration_ms"]),
        status=STATUSES[r["status_code"]] if 0 <= r["status_code"] < len(STATUSES) else str(r["status_code"]),
        status_message=r["status_message"],
        model=r["model"],
        input_tokens=r["input_tokens"],
        output_tokens=r["output_tokens"],
        cost_usd=r["cost_usd"],
        attributes=_attributes(r),
        resource=dict(sorted((r["resource_attributes"] or {}).items())),
        scope=r["scope_name"],
        events=plain,
        exceptions=exceptions,
        links=links,
    )


def parse_span_id(text: str) -> bytes:
    value = text.strip().lower()
    if len(value) != 16 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"span_id: expected 16 hex digits, got {text!r}")
    return bytes.fromhex(value)


def _detail_rows(conn: psycopg.Connection[Any], condition: str, params: list[Any]) -> list[dict[str, Any]]:
    """The columns and details of the spans ``condition`` (what follows WHERE) selects."""
    query = sql.SQL("SELECT {}{} FROM spans WHERE ").format(_SPAN_COLUMNS, _DETAILS) + sql.SQL(condition)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def read_span(conn: psycopg.Connection[Any], trace_id: str, span_id: str) -> SpanView | None:
    """One span with its attributes, resource, events, exceptions and links (offsets from the span's start)."""
    tid, sid = parse_trace_id(trace_id), parse_span_id(span_id)
    rows = _detail_rows(conn, "trace_id = %s AND span_id = %s LIMIT 1", [tid, sid])
    if not rows:
        return None
    row = rows[0]
    events, links = _events(conn, tid, sid), _links(conn, tid, sid)
    return _span_view(0, row, row["start_time"], events.get(sid, []), links.get(sid, []))


def _related(conn: psycopg.Connection[Any], tid: bytes, correlation_ids: list[str]) -> list[TraceSummary]:
    """Other traces sharing one of the correlation ids, newest first (at most MAX_RELATED)."""
    if not correlation_ids:
        return []
    # Materialized so the correlation id index answers: as one DISTINCT ... LIMIT the planner walks every
    # partition's primary key in trace id order instead (seconds on a month of spans).
    others = conn.execute(
        "WITH m AS MATERIALIZED (SELECT trace_id FROM spans WHERE correlation_id = ANY(%s))"
        " SELECT DISTINCT trace_id FROM m WHERE trace_id <> %s LIMIT %s",
        [correlation_ids, tid, MAX_RELATED],
    ).fetchall()
    return sorted(
        (_summary(r) for r in _summaries(conn, [bytes(o[0]) for o in others], None)),
        key=lambda t: t.start_time,
        reverse=True,
    )


def read_trace(conn: psycopg.Connection[Any], trace_id: str) -> TraceDetail | None:
    """The whole trace (at most MAX_TRACE_SPANS spans shown) with every span's details, or None when no span has
    this id."""
    tid = parse_trace_id(trace_id)
    found = _summaries(conn, [tid], None)
    if not found:
        return None
    summary = _summary(found[0])
    rows = _detail_rows(conn, "trace_id = %s ORDER BY start_time, span_id LIMIT %s", [tid, MAX_TRACE_SPANS])
    events, links = _events(conn, tid), _links(conn, tid)
    spans = [
        _span_view(depth, r, summary.start_time, events.get(r["span_id"], []), links.get(r["span_id"], []))
        for depth, r in _tree_order(rows)
    ]
    correlation_ids = sorted({r["correlation_id"] for r in rows if r["correlation_id"] is not None})
    return TraceDetail(
        summary, spans, summary.spans - len(spans), correlation_ids, _related(conn, tid, correlation_ids)
    )


@dataclass(frozen=True)
class TimelineSpan:
    span_id: str
    depth: int
    name: str
    service: str
    offset_ms: float  # from the trace's start
    duration_ms: float
    error: bool
    cost_usd: float | None


@dataclass(frozen=True)
class Timeline:
    """What a trace page draws: spans in tree order without their attribute maps (``read_span`` has them)."""

    summary: TraceSummary
    spans: list[TimelineSpan]
    truncated: int
    correlation_ids: list[str]
    related: list[TraceSummary]


def read_timeline(conn: psycopg.Connection[Any], trace_id: str) -> Timeline | None:
    """A trace's timeline, or None when no span has this id: only the columns a timeline row shows, so a
    5,000-span trace is a few milliseconds of rows, not thousands of attribute maps and span objects."""
    tid = parse_trace_id(trace_id)
    found = _summaries(conn, [tid], None)
    if not found:
        return None
    summary = _summary(found[0])
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT span_id, parent_span_id, name, service_name, start_time, duration_ms, status_code,"
            " cost_usd::float8 AS cost_usd, correlation_id FROM spans WHERE trace_id = %s"
            " ORDER BY start_time, span_id LIMIT %s",
            [tid, MAX_TRACE_SPANS],
        )
        rows = cur.fetchall()
    start = summary.start_time
    spans = [
        TimelineSpan(
            bytes(r["span_id"]).hex(),
            depth,
            r["name"],
            r["service_name"],
            (r["start_time"] - start).total_seconds() * 1000.0,
            float(r["duration_ms"]),
            r["status_code"] == STATUSES.index("error"),
            r["cost_usd"],
        )
        for depth, r in _tree_order(rows)
    ]
    correlation_ids = sorted({r["correlation_id"] for r in rows if r["correlation_id"] is not None})
    return Timeline(summary, spans, summary.spans - len(spans), correlation_ids, _related(conn, tid, correlation_ids))
