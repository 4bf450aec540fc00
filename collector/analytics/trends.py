"""Least-squares trends over time buckets: which metric, which way is better, and the verdict."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from . import statistics as stats
from .models import TimeBucket, Trend

__all__ = [
    "MIN_TREND_POINTS",
    "SIGNIFICANCE",
    "TREND_METRICS",
    "TrendMetric",
    "trend_of",
    "trend_points",
    "trends_of",
]

# A trend needs at least this many points; a slope with a two-sided p-value at or above SIGNIFICANCE is "stable".
MIN_TREND_POINTS = 3
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class TrendMetric:
    higher_is_better: bool
    value: Callable[[TimeBucket], float | None]  # None: undefined in that bucket


TREND_METRICS: dict[str, TrendMetric] = {
    "calls": TrendMetric(True, lambda b: float(b.operations)),
    "success_rate": TrendMetric(True, lambda b: b.success_rate),
    "error_rate": TrendMetric(False, lambda b: 1.0 - b.success_rate if b.operations else None),
    "avg_ms": TrendMetric(False, lambda b: b.avg_ms),
    "p95_ms": TrendMetric(False, lambda b: b.p95_ms),
    "cost_usd": TrendMetric(False, lambda b: b.cost_usd),
    "quality_avg": TrendMetric(True, lambda b: b.quality_avg),
}
_STEP_SECONDS = {"hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0, "month": 30 * 86400.0}


def trend_points(
    series: Sequence[TimeBucket], start: datetime, granularity: str, metric: str
) -> tuple[list[float], list[float]]:
    """(x, y): x in granularity steps since ``start``; buckets where the metric is undefined are skipped."""
    if metric not in TREND_METRICS:
        raise ValueError(f"unknown trend metric {metric!r}")
    value_of = TREND_METRICS[metric].value
    step = _STEP_SECONDS[granularity]
    xs: list[float] = []
    ys: list[float] = []
    for bucket in series:
        value = value_of(bucket)
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
        better = TREND_METRICS[metric].higher_is_better
        verdict = "improving" if (reg.slope > 0) == better else "degrading"
    return Trend(metric, reg.n, reg.slope, reg.intercept, reg.r_squared, reg.pvalue, ys[0], ys[-1], verdict)


def trends_of(series: Sequence[TimeBucket], start: datetime, granularity: str, metrics: Sequence[str]) -> list[Trend]:
    out = []
    for metric in metrics:
        xs, ys = trend_points(series, start, granularity, metric)
        out.append(trend_of(metric, xs, ys))
    return out
