"""Time series per key for the web UI (``Analytics`` inherits them): totals per (key, time bucket) on one x axis,
and the request-level cost questions of a window (its most expensive requests, its unpriced calls).

Buckets follow the window: minutes up to an hour, 5 minutes up to 6 hours, hours up to 7 days, days beyond. Up to
6 hours raw spans answer (exact); beyond, the rollups (hours from ``span_rollups_1h`` up to a day, then the
query layer's daily and hourly caches), unless a key or filter needs a column only raw spans carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import sql

from . import _histogram
from ._aggregate import QueryBase
from ._sql import KEY_COLUMNS, ROLLUP_TABLE, Part, Source, _where, granularity_literal
from .window import ROLLUP_KEYS, Filters, TimeWindow

__all__ = ["SERIES_KEYS", "Axis", "KeyedRows", "SeriesQueries"]

# Series keys: "all" is one line; the others are columns (_sql.KEY_COLUMNS), read from the rollups when they
# carry them (ROLLUP_KEYS), else from raw spans.
SERIES_KEYS = ("all", "service", "model", "provider", "tenant", "agent", "user", "feature")
# Keys the per-operation caches carry (no status, tenant, agent or model), so they may answer.
_OPERATION_KEYS = ("all", "service")
# Rollup windows up to this long are drawn per hour, longer ones per day.
HOURLY_UP_TO = timedelta(days=7)
# Windows up to this long read raw spans, in buckets of (window up to, bucket seconds); longer ones the rollups.
RAW_BUCKETS = ((timedelta(hours=1), 60), (timedelta(hours=6), 300))
# The most expensive requests are looked for among the requests of the window's this many most expensive calls
# (an index scan per daily partition): a request whose cost is spread over many cheaper calls can be missed.
TOP_CALL_CANDIDATES = 500
# Unpriced calls read at most this many spans (through the partial index of unpriced model calls).
MAX_UNPRICED_SPANS = 100_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_QUANTILES = (0.5, 0.95, 0.99)
_SUMMED = ("calls", "requests", "errors", "dsum", "itok", "otok", "cost")


@dataclass(frozen=True)
class Axis:
    """Every bucket start of the window (epoch seconds), empty ones included."""

    x: list[float]
    step: float  # seconds
    label: str  # "1 min", "5 min", "hour", "day"

    def index(self, bucket: datetime) -> int:
        """The bucket's position on the axis (may fall outside it: callers skip those)."""
        return int((bucket.timestamp() - self.x[0]) // self.step)


@dataclass(frozen=True)
class KeyedRows:
    """Totals per key (``key``), and per bucket (``bucket``) unless asked for the whole window: calls, requests
    (root or SERVER spans), roots (root spans; None where rollups written before migration 0030 were read), errors,
    dsum, itok, otok, cost and, with latency, ``pct`` (p50, p95, p99 in ms)."""

    axis: Axis
    rows: list[dict[str, Any]]
    rollup: bool  # read from rollups (percentiles to the histogram's < 1 %) rather than raw spans


def granularity_for(window: TimeWindow) -> str:
    return "hour" if window.duration <= HOURLY_UP_TO else "day"


def _totals(rows: list[dict[str, Any]], slow_ms: float, very_slow_ms: float) -> list[dict[str, Any]]:
    """Per key: the rows' sums and the percentiles of their merged histograms (rows carry ``hist``)."""
    per_key: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        per_key.setdefault(r["key"], []).append(r)
    out = []
    for key, group in per_key.items():
        total: dict[str, Any] = {"key": key, **{f: sum(r[f] or 0 for r in group) for f in _SUMMED}}
        total["roots"] = None if any(r["roots"] is None for r in group) else sum(r["roots"] for r in group)
        hk, hn = _histogram.merge([r["hist"] for r in group if r.get("hist")])
        total["pct"] = _histogram.summarize(hk, hn, _QUANTILES, slow_ms, very_slow_ms).pct
        out.append(total)
    return out


def _series_column(by: str) -> str:
    """What series key ``by`` groups by: its spans column, or a constant for "all"; ValueError for another key."""
    if by not in SERIES_KEYS:
        raise ValueError(f"by: expected one of {', '.join(SERIES_KEYS)}, got {by!r}")
    return "'all'" if by == "all" else KEY_COLUMNS[by]


class SeriesQueries(QueryBase):
    def _series_source(self, window: TimeWindow, filters: Filters, by: str) -> tuple[Source, Axis, sql.Composable]:
        in_rollups = by == "all" or by in ROLLUP_KEYS
        granularity = granularity_for(window)
        raw = window.duration <= RAW_BUCKETS[-1][0]
        if not raw and not window.uses_rollups and in_rollups and filters.rollup_compatible() and not self.exact:
            # span_rollups_1h over the hour-aligned window: a chart of hours needs no more, and a day of raw
            # spans is 30x the rows.
            aligned = window.rollup_aligned()
            where, params = _where(aligned, filters, "bucket_start")
            src = Source([Part(ROLLUP_TABLE, where, params)], "bucket_start", aligned)
        else:
            src = self._source(
                window,
                filters,
                allow_rollup=in_rollups,
                sub_day=granularity == "hour",
                dimensions=by not in _OPERATION_KEYS,
                hourly="ops" if by in _OPERATION_KEYS else None,
            )
        expr: sql.Composable
        if src.rollup or not raw:  # raw spans over a long window: a key the rollups do not carry
            step = 3600.0 if granularity == "hour" else 86400.0
            expr = sql.SQL("date_trunc({}, {})").format(granularity_literal(granularity), src.time)
            label = granularity
        else:
            step = float(next(s for limit, s in RAW_BUCKETS if window.duration <= limit))
            expr = sql.SQL("date_bin({}, {}, {})").format(
                sql.Literal(timedelta(seconds=step)), src.time, sql.Literal(_EPOCH)
            )
            label = f"{step / 60:.0f} min"
        first = (src.window.start.timestamp() // step) * step
        x = [first + i * step for i in range(int((src.window.end.timestamp() - first) // step) + 1)]
        return src, Axis(x, step, label), expr

    def keyed_series(
        self, window: TimeWindow, filters: Filters, by: str, *, latency: bool, per_bucket: bool = True
    ) -> KeyedRows:
        """Totals per ``by`` key (one of ``SERIES_KEYS``) and time bucket, or over the whole window
        (``per_bucket=False``, from the same source as the series)."""
        column = _series_column(by)
        src, axis, expr = self._series_source(window, filters, by)
        keys = [("key", column)]
        if per_bucket:
            keys.append(("bucket", expr.as_string(self.conn)))
        rows = self._aggregate(src, keys, latency=latency, order="1", quantiles=_QUANTILES)
        return KeyedRows(axis, rows, src.rollup)

    def keyed_series_and_totals(
        self, window: TimeWindow, filters: Filters, by: str
    ) -> tuple[KeyedRows, list[dict[str, Any]]]:
        """``keyed_series`` with latency, and the whole window's totals per key. On rollups the totals are summed
        and their histograms merged from the series' own rows (one read, not two); on raw spans they are read."""
        column = _series_column(by)
        src, axis, expr = self._series_source(window, filters, by)
        keys = [("key", column), ("bucket", expr.as_string(self.conn))]
        rows = self._aggregate(src, keys, latency=True, order="1", quantiles=_QUANTILES, histograms=True)
        series = KeyedRows(axis, rows, src.rollup)
        if not src.rollup:
            return series, self._aggregate(src, keys[:1], latency=True, order="1", quantiles=_QUANTILES)
        return series, _totals(rows, self.thresholds.slow_ms, self.thresholds.very_slow_ms)

    def costliest_requests(self, window: TimeWindow, filters: Filters, limit: int) -> list[dict[str, Any]]:
        """The window's most expensive requests (correlation ids), each with its whole cost in the window, the trace
        of its most expensive call, span count, services, tenant and first start. Bounded: candidates are the
        requests of the window's ``TOP_CALL_CANDIDATES`` most expensive calls (index ``spans_cost``)."""
        where, params = _where(window, filters, "start_time")
        return self._rows(
            sql.SQL(
                "WITH top AS (SELECT DISTINCT correlation_id FROM (SELECT correlation_id FROM spans"
                "  WHERE {where} AND cost_usd > 0 AND correlation_id IS NOT NULL ORDER BY cost_usd DESC LIMIT %s) AS c)"
                " SELECT correlation_id, encode((array_agg(trace_id ORDER BY cost_usd DESC NULLS LAST))[1], 'hex')"
                " AS trace_id, coalesce(sum(cost_usd), 0)::float8 AS cost_usd, count(*)::bigint AS spans,"
                " string_agg(DISTINCT service_name, ',' ORDER BY service_name) AS services,"
                " min(tenant_id) AS tenant, min(start_time) AS start_time"
                " FROM spans WHERE correlation_id IN (SELECT correlation_id FROM top) AND {where}"
                " GROUP BY correlation_id ORDER BY 3 DESC, 1 LIMIT %s"
            ).format(where=where),
            [*params, TOP_CALL_CANDIDATES, *params, limit],
        )

    def unpriced_calls(self, window: TimeWindow, filters: Filters) -> list[dict[str, Any]]:
        """Model calls with token counts but no cost in the window, per (model, provider); reads at most
        ``MAX_UNPRICED_SPANS`` spans (index ``spans_unpriced``)."""
        where, params = _where(window, filters, "start_time")
        return self._rows(
            sql.SQL(
                "SELECT model, coalesce(provider, '') AS provider, count(*)::bigint AS calls,"
                " coalesce(sum(input_tokens), 0)::bigint AS input_tokens,"
                " coalesce(sum(output_tokens), 0)::bigint AS output_tokens"
                " FROM (SELECT model, provider, input_tokens, output_tokens FROM spans"
                "  WHERE {where} AND model IS NOT NULL AND cost_usd IS NULL LIMIT %s) AS u"
                " WHERE input_tokens IS NOT NULL OR output_tokens IS NOT NULL"
                " GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 50"
            ).format(where=where),
            [*params, MAX_UNPRICED_SPANS],
        )
