"""Log-bucketed latency histograms (gamma = 1.02), the Python twin of the SQL helpers in migration 0001.

A duration ``d`` ms (clamped to >= 0.001) falls in bucket ``ceil(ln d / ln gamma)``; the bucket's
representative value ``2 * gamma**i / (gamma + 1)`` is within (gamma - 1) / (gamma + 1) < 1 % of every value
in it. Histograms are ``{index: count}`` maps (``{"index": count}`` jsonb in the database).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = ["GAMMA", "LN_GAMMA", "MIN_DURATION_MS", "bucket_index", "bucket_value", "build", "merge", "quantile"]

GAMMA = 1.02
MIN_DURATION_MS = 0.001
LN_GAMMA = math.log(GAMMA)


def bucket_index(duration_ms: float) -> int:
    d = duration_ms if duration_ms > MIN_DURATION_MS else MIN_DURATION_MS  # also maps NaN to the floor
    return math.ceil(math.log(d) / LN_GAMMA)


def bucket_value(index: int) -> float:
    return 2.0 * GAMMA**index / (GAMMA + 1.0)


def build(durations_ms: Iterable[float]) -> dict[int, int]:
    hist: dict[int, int] = {}
    for d in durations_ms:
        i = bucket_index(d)
        hist[i] = hist.get(i, 0) + 1
    return hist


def merge(a: Mapping[int | str, int], b: Mapping[int | str, int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for hist in (a, b):
        for key, count in hist.items():
            i = int(key)
            out[i] = out.get(i, 0) + int(count)
    return out


def quantile(hist: Mapping[int | str, int], q: float) -> float | None:
    """numpy's default (linear) quantile over the representative values; None for an empty histogram."""
    buckets = sorted((int(k), int(n)) for k, n in hist.items() if int(n) > 0)
    total = sum(n for _, n in buckets)
    if total == 0:
        return None
    rank = min(max(q, 0.0), 1.0) * (total - 1)
    lo, hi = math.floor(rank), math.ceil(rank)
    lo_value: float | None = None
    seen = 0
    for i, n in buckets:
        if lo_value is None and lo < seen + n:
            lo_value = bucket_value(i)
        if hi < seen + n:
            assert lo_value is not None
            return lo_value + (bucket_value(i) - lo_value) * (rank - lo)
        seen += n
    raise AssertionError("unreachable: rank within total")
