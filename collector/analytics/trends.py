"""Least-squares trends over time buckets: which metric, which way is better, and the verdict."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from . import statistics as stats
from .models import TimeBucket, Trend

__all__ = ["MIN_TREND_POINTS", "SIGNIFICANCE", "TREND_METRICS", "trend_of", "trend_points", "trends_of"]

# A trend needs at least this many points; a slope with a two-sided p-value at or above SIGNIFICANCE is "stable".
MIN_TREND_POINTS = 3
SIGNIFICANCE = 0.05
# metric -> True when higher values are better
TREND_METRICS: dict[str, bool] = {
    "calls": True,
    "success_rate": True,
    "error_rate": False,
    "avg_ms": False,
    "p95_ms": False,
    "cost_usd": False,
    "quality_avg": True,
}
_STEP_SECONDS = {"hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0, "month": 30 * 86400.0}


def _metric_value(bucket: TimeBucket, metric: str) -> float | None:
    if metric == "calls":
        return float(bucket.operations)
    if metric == "success_rate":
        return bucket.success_rate
    if metric == "error_rate":
        return 1.0 - bucket.success_rate if bucket.operations else None
    if metric == "avg_ms":
        return bucket.avg_ms
    if metric == "p95_ms":
        return bucket.p95_ms
    if metric == "cost_usd":
        return bucket.cost_usd
    if metric == "quality_avg":
        return bucket.quality_avg
    raise ValueError(f"unknown trend metric {metric!r}")


def trend_points(
    series: Sequence[TimeBucket], start: datetime, granularity: str, metric: str
) -> tuple[list[float], list[float]]:
    """(x, y): x in granularity steps since ``start``; buckets where the metric is undefined are skipped."""
    step = _STEP_SECONDS[granularity]
    xs: list[float] = []
    ys: list[float] = []
    for bucket in series:
        value = _metric_value(bucket, metric)
        if value is None:
            continue
        xs.append((bucket.bucket - start).total_seconds() / step)
        ys.append(float(value))
    return xs, ys


def trend_of(metric: str, xs: Sequence[float], ys: Sequence[float]) -> Trend:
    if len(xs) < MIN_TREND_POINTS:
        return Trend(
            metric, len(xs), None, None, None, None, ys[0] if ys else None, ys[-1] if ys else None, "insufficient_data"
        )
    reg = stats.linregress(xs, ys)
    if reg.pvalue >= SIGNIFICANCE or reg.slope == 0:
        verdict = "stable"
    else:
        better = TREND_METRICS[metric]
        verdict = "improving" if (reg.slope > 0) == better else "degrading"
    return Trend(metric, reg.n, reg.slope, reg.intercept, reg.r_squared, reg.pvalue, ys[0], ys[-1], verdict)


def trends_of(series: Sequence[TimeBucket], start: datetime, granularity: str, metrics: Sequence[str]) -> list[Trend]:
    out = []
    for metric in metrics:
        xs, ys = trend_points(series, start, granularity, metric)
        out.append(trend_of(metric, xs, ys))
    return out
