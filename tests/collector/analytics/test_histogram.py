"""Percentiles, slow counts and moments of merged rollup histograms (collector.analytics._histogram) against the
sink's Python twin of otel_hist_quantile and plain sums over the same buckets."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from collector.analytics import _histogram
from collector.exporters.postgres import histogram


def _keyed(h: Mapping[int, int]) -> dict[int | str, int]:
    """The stored form's key type (JSON keys arrive as strings)."""
    return {k: n for k, n in h.items()}


@pytest.mark.parametrize("seed", range(5))
def test_summary_matches_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(int(rng.integers(1, 6))):
        durations = rng.lognormal(4.0, 1.2, int(rng.integers(1, 400)))
        h = histogram.build(durations.tolist())
        keys = sorted(h)
        parts.append((keys, [h[k] for k in keys]))
    merged: dict[int, int] = {}
    for keys, counts in parts:
        merged = histogram.merge(_keyed(merged), _keyed(dict(zip(keys, counts, strict=True))))
    hk, hn = _histogram.merge(parts)
    assert list(hk) == sorted(merged) and list(hn) == [merged[k] for k in sorted(merged)]
    qs = (0.0, 0.5, 0.95, 0.99, 1.0)
    s = _histogram.summarize(hk, hn, qs, 100.0, 500.0)
    assert s.pct == pytest.approx([histogram.quantile(_keyed(merged), q) for q in qs], rel=1e-12)
    assert s.slow == sum(n for k, n in merged.items() if k > histogram.bucket_index(100.0))
    assert s.very_slow == sum(n for k, n in merged.items() if k > histogram.bucket_index(500.0))
    values = {k: histogram.bucket_value(k) for k in merged}
    assert s.vsum == pytest.approx(sum(n * values[k] for k, n in merged.items()), rel=1e-12)
    assert s.vsq == pytest.approx(sum(n * values[k] ** 2 for k, n in merged.items()), rel=1e-12)


def test_empty() -> None:
    assert _histogram.summarize([], [], (0.5,), 1.0, 2.0).pct is None
    assert _histogram.summarize(None, None, (0.5,), 1.0, 2.0).slow == 0
