"""Cost questions of the query layer (``Analytics`` inherits them): cost by a breakdown key, the total, one
request's cost across services, the month-end projection and cost per rollup dimension for budgets."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import sql

from ._aggregate import QueryBase, _clamp_limit, _rate
from ._sql import KEY_COLUMNS
from .estimate import UNSAMPLED_TABLE, estimated_costs
from .models import CorrelationCost, CostProjection, CostRow, RequestCost
from .unpriced import folded_by_key
from .window import NO_FILTERS, ROLLUP_KEYS, Filters, TimeWindow

__all__ = ["BURN_WINDOW_DAYS", "COST_KEYS", "CostQueries"]

BURN_WINDOW_DAYS = 7
_NONE = "(none)"
# Cost breakdown keys (their columns: _sql.KEY_COLUMNS); those in ROLLUP_KEYS may be read from the rollups.
COST_KEYS = ("model", "tenant", "agent", "operation", "service", "provider", "user", "correlation")


class CostQueries(QueryBase):
    def costs(
        self,
        window: TimeWindow,
        filters: Filters = NO_FILTERS,
        *,
        by: str = "model",
        limit: int | None = None,
        offset: int = 0,
    ) -> list[CostRow]:
        if by not in COST_KEYS:
            raise ValueError(f"by: expected one of {', '.join(COST_KEYS)}, got {by!r}")
        column, in_rollups = KEY_COLUMNS[by], by in ROLLUP_KEYS
        src = self._source(window, filters, allow_rollup=in_rollups, dimensions=by not in ("operation", "service"))
        # Head-sampled spans weigh their adjusted count: the rows estimate the whole (estimate.py).
        rows = estimated_costs(self.conn, src, filters, [("key", column)], limit=_clamp_limit(limit), offset=offset)
        total = self.total_cost(window, filters)
        folded = folded_by_key(self.conn, src.window, filters, column) if rows else {}
        out = []
        for r in rows:
            calls, successes, cost = round(r["calls"]), round(r["calls"] - r["errors"]), float(r["cost"])
            out.append(
                CostRow(
                    key=r["key"] or _NONE,
                    calls=calls,
                    successes=successes,
                    input_tokens=round(r["itok"]),
                    output_tokens=round(r["otok"]),
                    cost_usd=cost,
                    cost_per_success=cost / successes if successes else None,
                    share=_rate(cost, total),
                    estimated=bool(r["estimated"]),
                    folded_spans=folded.get(r["key"], 0),
                )
            )
        return out

    def total_cost(self, window: TimeWindow, filters: Filters = NO_FILTERS) -> float:
        """The whole cost in ``window`` (an estimate when head-sampled spans contributed)."""
        whole = self._whole(window, filters)
        return float(whole["cost"]) if whole else 0.0

    def _whole(self, window: TimeWindow, filters: Filters) -> dict[str, Any] | None:
        src = self._source(window, filters, dimensions=False)
        rows = estimated_costs(self.conn, src, filters, [("all", "'all'")])
        return rows[0] if rows else None

    def request_cost(self, window: TimeWindow, filters: Filters = NO_FILTERS) -> RequestCost:
        """Cost per request. Without a service or operation filter a request is a trace (its root span), counted once
        however many services it entered; with one, a request into that service or operation (its root and SERVER
        spans), which the cost of its own spans is divided by. Model and agent filters narrow the cost, not the
        requests (an LLM call is no request). Requests are unknown (None) when the window reads rollups written
        before migration 0030: they counted no roots, and those written before 0024 no requests either, which
        nothing tells apart from the ones between."""
        per_entry = filters.service is not None or filters.operation is not None
        entries = replace(filters, model=None, agent=None)
        cost = self._whole(window, filters)
        counted = cost if entries == filters else self._whole(window, entries)
        n: float | None = 0.0
        if counted is not None:
            n = float(counted["requests" if per_entry else "roots"]) if counted["roots_known"] else None
        usd = float(cost["cost"]) if cost else 0.0
        return RequestCost(
            basis="entry" if per_entry else "trace",
            requests=None if n is None else round(n),
            cost_usd=usd,
            cost_per_request=usd / n if n else None,
            estimated=any(bool(r and r["estimated"]) for r in (cost, counted)),
        )

    def correlation_cost(self, correlation_id: str) -> CorrelationCost | None:
        """The whole cost of one request across every service it touched (any time; indexed lookup)."""
        row = self._rows(
            sql.SQL(
                "SELECT count(*)::bigint AS spans, string_agg(DISTINCT service_name, ',' ORDER BY service_name) AS svc,"
                " coalesce(sum(cost_usd), 0)::float8 AS cost, coalesce(sum(input_tokens), 0)::bigint AS itok,"
                " coalesce(sum(output_tokens), 0)::bigint AS otok, min(start_time) AS first, max(end_time) AS last"
                " FROM spans WHERE correlation_id = %s"
            ),
            [correlation_id],
        )[0]
        if not row["spans"]:
            return None
        return CorrelationCost(
            correlation_id,
            int(row["spans"]),
            row["svc"],
            row["cost"],
            int(row["itok"]),
            int(row["otok"]),
            row["first"],
            row["last"],
        )

    def cost_projection(self, filters: Filters = NO_FILTERS, now: datetime | None = None) -> CostProjection:
        """Month-to-date cost, average daily burn over the last BURN_WINDOW_DAYS days, month-end projection (UTC)."""
        now = now or datetime.now(UTC)
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        next_month = (month_start + timedelta(days=32)).replace(day=1)
        mtd = self.total_cost(TimeWindow(month_start, now), filters) if now > month_start else 0.0
        burn_total = self.total_cost(TimeWindow(now - timedelta(days=BURN_WINDOW_DAYS), now), filters)
        burn = burn_total / BURN_WINDOW_DAYS
        remaining = (next_month - now).total_seconds() / 86400.0
        return CostProjection(month_start, mtd, burn, BURN_WINDOW_DAYS, remaining, mtd + burn * remaining)

    def cost_by_dimension(self, dimension: str, since: datetime, now: datetime | None = None) -> dict[str, float]:
        """Cost per value of a rollup dimension (tenant_id, agent_name, model) since an hour-aligned time."""
        if dimension not in ("tenant_id", "agent_name", "model"):
            raise ValueError(f"dimension: expected tenant_id, agent_name or model, got {dimension!r}")
        now = now or datetime.now(UTC)
        # plus span_rollups_unsampled_1h: what head-sampled spans stand for (estimate.py); a value whose rows sum to
        # no span (its counts moved to another: exporters/postgres/owners.py) is left out
        q = sql.SQL(
            "SELECT d, sum(c)::float8 FROM (SELECT {d} AS d, cost_usd AS c, count AS n FROM span_rollups_1h"
            " WHERE bucket_start >= %s AND bucket_start < %s UNION ALL SELECT {d}, cost_usd, count FROM {u}"
            " WHERE bucket_start >= %s AND bucket_start < %s) AS r GROUP BY 1 HAVING sum(n) <> 0"
        ).format(d=sql.Identifier(dimension), u=sql.Identifier(UNSAMPLED_TABLE))
        return {r[0]: float(r[1]) for r in self.conn.execute(q, (since, now, since, now)).fetchall()}
