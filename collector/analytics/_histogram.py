"""Percentiles and moments of a merged latency histogram given as sorted parallel arrays (bucket ids, counts).

SQL merges the buckets (``GROUP BY key, bucket``) and hands each key's histogram over as two arrays; reading them
here costs one pass per key, where the same in SQL needed two window aggregates over every (key, bucket) row.
Same definitions as ``otel_hist_quantile`` (numpy's linear rank over the buckets' representative values) and the
sink's ``histogram`` module, so results are unchanged.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import mul

from collector.exporters.postgres.histogram import GAMMA, bucket_index

__all__ = ["Summary", "merge", "summarize"]

_SCALE = 2.0 / (GAMMA + 1.0)


@dataclass(frozen=True)
class Summary:
    pct: list[float] | None  # one value per requested quantile; None for an empty histogram
    slow: int  # counts in buckets above each threshold's bucket, in the thresholds' order
    very_slow: int
    vsum: float | None  # sum and sum of squares of the representative values (for mean/std on rollups)
    vsq: float | None


def summarize(
    keys: Sequence[int] | None,
    counts: Sequence[int] | None,
    quantiles: Sequence[float],
    slow_ms: float,
    very_slow_ms: float,
) -> Summary:
    """``keys`` ascending bucket ids, ``counts`` their (non-negative) counts. Every loop runs in C (accumulate,
    bisect, map): a month of hourly histograms is a few hundred thousand buckets."""
    if not keys or not counts:
        return Summary(None, 0, 0, None, None)
    cum = list(accumulate(counts))
    total = cum[-1]
    if total <= 0:
        return Summary(None, 0, 0, None, None)
    pct = []
    for q in quantiles:
        rank = min(max(q, 0.0), 1.0) * (total - 1)
        lo, hi = math.floor(rank), math.ceil(rank)
        # the order statistic of rank r is in the first bucket whose running count exceeds r
        lo_v = _SCALE * GAMMA ** keys[bisect_right(cum, lo)]
        hi_v = _SCALE * GAMMA ** keys[bisect_right(cum, hi)]
        pct.append(lo_v + (hi_v - lo_v) * (rank - lo))
    vsum = _SCALE * sum(map(mul, counts, map(pow, repeat(GAMMA), keys)))
    vsq = _SCALE * _SCALE * sum(map(mul, counts, map(pow, repeat(GAMMA * GAMMA), keys)))
    return Summary(
        pct, _above(keys, cum, bucket_index(slow_ms)), _above(keys, cum, bucket_index(very_slow_ms)), vsum, vsq
    )


def _above(keys: Sequence[int], cum: Sequence[int], k: int) -> int:
    """Count in buckets with an id above ``k``."""
    i = bisect_right(keys, k)
    return cum[-1] - (cum[i - 1] if i else 0)


def merge(parts: Sequence[tuple[Sequence[int], Sequence[int]]]) -> tuple[Sequence[int], Sequence[int]]:
    """One sorted histogram from several (bucket ids, counts) pairs; a single pair is returned as it is."""
    parts = [p for p in parts if p[0]]
    if len(parts) <= 1:
        return parts[0] if parts else ([], [])
    # Bucket ids are small integers (log-spaced, a few hundred apart at most in practice): counts added into a
    # list indexed by id take a third of the time of a dict, and come out sorted.
    lo = min(keys[0] for keys, _ in parts)
    acc = [0] * (max(keys[-1] for keys, _ in parts) - lo + 1)
    for keys, counts in parts:
        for k, n in zip(keys, counts, strict=True):
            acc[k - lo] += n
    return [i + lo for i, n in enumerate(acc) if n], [n for n in acc if n]
