"""Pure-Python statistics for analytics (the product must not import numpy/scipy, which are dev-only).

Definitions match the references the tests compare against:
- ``percentile``: numpy's default ("linear") interpolation between order statistics.
- ``std``: population standard deviation (numpy's default ``ddof=0``).
- ``linregress``: least squares with the two-sided p-value of the Wald t-test on the slope, exactly as
  ``scipy.stats.linregress`` computes it (t distribution with n - 2 degrees of freedom).
- ``zscores``: (x - mean) / std with the population std, as ``scipy.stats.zscore``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Regression",
    "describe",
    "linregress",
    "mean",
    "percentile",
    "std",
    "student_t_sf",
    "zscores",
]

# Continued-fraction tolerance and iteration bound for the regularised incomplete beta function.
_BETACF_EPS = 1e-15
_BETACF_MAX_ITER = 500
_TINY = 1e-300


def mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def std(values: Sequence[float]) -> float | None:
    """Population standard deviation (ddof=0); None for no values."""
    m = mean(values)
    if m is None:
        return None
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / len(values))


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """q in [0, 100] over already sorted values, numpy's linear method."""
    n = len(sorted_values)
    if n == 0:
        return None
    rank = min(max(q, 0.0), 100.0) / 100.0 * (n - 1)
    lo = math.floor(rank)
    hi = math.ceil(rank)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (rank - lo)


def describe(values: Sequence[float], quantiles: Sequence[float] = (50, 75, 90, 95, 99)) -> dict[str, float | None]:
    ordered = sorted(values)
    out: dict[str, float | None] = {f"p{q:g}": percentile(ordered, q) for q in quantiles}
    out["mean"] = mean(ordered)
    out["median"] = percentile(ordered, 50)
    out["std"] = std(ordered)
    out["min"] = ordered[0] if ordered else None
    out["max"] = ordered[-1] if ordered else None
    out["count"] = float(len(ordered))
    return out


def zscores(values: Sequence[float]) -> list[float]:
    """Population z-scores; all zeros when every value is equal (scipy would give NaN: nothing stands out)."""
    m = mean(values)
    s = std(values)
    if m is None or not s:
        return [0.0 for _ in values]
    return [(v - m) / s for v in values]


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz's method)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = _TINY if abs(d) < _TINY else d
    d = 1.0 / d
    h = d
    for m in range(1, _BETACF_MAX_ITER + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _BETACF_EPS:
            break
    return h


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """Regularised incomplete beta I_x(a, b), given x and y = 1 - x computed without cancellation."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, y) / b


def student_t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    t2 = t * t
    # x = df / (df + t^2) and 1 - x = t^2 / (df + t^2): both exact, so small |t| keeps full precision.
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2))
    return tail if t > 0 else 1.0 - tail


@dataclass(frozen=True)
class Regression:
    slope: float
    intercept: float
    rvalue: float
    pvalue: float
    stderr: float
    intercept_stderr: float
    n: int

    @property
    def r_squared(self) -> float:
        return self.rvalue * self.rvalue


def linregress(x: Sequence[float], y: Sequence[float]) -> Regression:
    """Ordinary least squares of y on x, scipy.stats.linregress's formulas (two-sided p-value)."""
    n = len(x)
    if n != len(y):
        raise ValueError(f"linregress: x has {n} points, y has {len(y)}")
    if n < 2:
        raise ValueError("linregress: need at least 2 points")
    xmean = math.fsum(x) / n
    ymean = math.fsum(y) / n
    ssxm = math.fsum((xi - xmean) ** 2 for xi in x) / n
    ssym = math.fsum((yi - ymean) ** 2 for yi in y) / n
    ssxym = math.fsum((xi - xmean) * (yi - ymean) for xi, yi in zip(x, y, strict=True)) / n
    if ssxm == 0.0:
        raise ValueError("linregress: all x values are identical")
    if ssym == 0.0:
        r = 0.0
    else:
        r = ssxym / math.sqrt(ssxm * ssym)
        r = max(-1.0, min(1.0, r))
    slope = ssxym / ssxm
    intercept = ymean - slope * xmean
    if n == 2:
        # Two points fit exactly: scipy reports p = 0, or 1 when y is constant.
        pvalue = 1.0 if ssym == 0.0 else 0.0
        stderr = 0.0
    else:
        df = n - 2
        tiny = 1.0e-20
        t = r * math.sqrt(df / ((1.0 - r + tiny) * (1.0 + r + tiny)))
        pvalue = 2.0 * student_t_sf(abs(t), df)
        stderr = math.sqrt((1.0 - r * r) * ssym / ssxm / df)
    intercept_stderr = stderr * math.sqrt(ssxm + xmean * xmean)
    return Regression(slope, intercept, r, min(pvalue, 1.0), stderr, intercept_stderr, n)
