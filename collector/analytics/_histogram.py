"""Percentiles and moments of a merged latency histogram given as sorted parallel arrays (bucket ids, counts).

SQL merges the buckets (``GROUP BY key, bucket``) and hands each key's histogram over as two arrays; reading them
here costs one pass per key, where the same in SQL needed two window aggregates over every (key, bucket) row.
Same definitions as ``otel_hist_quantile`` (numpy's linear rank over the buckets' representative values) and the
sink's ``histogram`` module, so results are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from collector.exporters.postgres.histogram import GAMMA, bucket_index

__all__ = ["Summary", "summarize"]

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
    """``keys`` ascending bucket ids, ``counts`` their (positive) counts."""
    if not keys or not counts:
        return Summary(None, 0, 0, None, None)
    total = 0
    for n in counts:
        total += n
    if total <= 0:
        return Summary(None, 0, 0, None, None)
    slow_k, very_k = bucket_index(slow_ms), bucket_index(very_slow_ms)
    # Ranks of the order statistics each quantile needs (floor and ceil of q * (total - 1)).
    ranks = [min(max(q, 0.0), 1.0) * (total - 1) for q in quantiles]
    wanted = sorted({r for rank in ranks for r in (math.floor(rank), math.ceil(rank))})
    found: dict[int, int] = {}
    w = 0
    seen = slow = very_slow = 0
    vsum = vsq = 0.0
    for k, n in zip(keys, counts, strict=True):
        seen += n
        while w < len(wanted) and wanted[w] < seen:
            found[wanted[w]] = k
            w += 1
        v = _SCALE * GAMMA**k
        vsum += n * v
        vsq += n * v * v
        if k > slow_k:
            slow += n
        if k > very_k:
            very_slow += n
    pct = []
    for rank in ranks:
        lo, hi = math.floor(rank), math.ceil(rank)
        lo_v, hi_v = _SCALE * GAMMA ** found[lo], _SCALE * GAMMA ** found[hi]
        pct.append(lo_v + (hi_v - lo_v) * (rank - lo))
    return Summary(pct, slow, very_slow, vsum, vsq)
