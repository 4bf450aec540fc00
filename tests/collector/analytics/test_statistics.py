"""The pure-Python statistics against numpy/scipy on the same numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.analytics import statistics as stats


@pytest.mark.parametrize("n", [3, 4, 7, 30, 200])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_linregress_matches_scipy(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0, 50, n))
    y = 0.3 * x + rng.normal(0, 4, n)
    ours = stats.linregress(list(x), list(y))
    ref = scipy.stats.linregress(x, y)
    assert ours.slope == pytest.approx(ref.slope, rel=1e-9, abs=1e-12)
    assert ours.intercept == pytest.approx(ref.intercept, rel=1e-9, abs=1e-9)
    assert ours.rvalue == pytest.approx(ref.rvalue, rel=1e-9, abs=1e-12)
    assert ours.r_squared == pytest.approx(ref.rvalue**2, rel=1e-9, abs=1e-12)
    assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    assert ours.stderr == pytest.approx(ref.stderr, rel=1e-9)
    assert ours.intercept_stderr == pytest.approx(ref.intercept_stderr, rel=1e-9)


def test_linregress_edge_cases_match_scipy() -> None:
    for x, y in (([0, 1], [1, 3]), ([0, 1, 2, 3], [0, 1, 2, 3]), ([0, 1, 2, 3], [3, 2, 1, 0])):
        ours = stats.linregress(x, y)
        ref = scipy.stats.linregress(x, y)
        assert ours.slope == pytest.approx(ref.slope)
        assert ours.pvalue == pytest.approx(ref.pvalue, abs=1e-12)
        assert ours.rvalue == pytest.approx(ref.rvalue)
    # Constant y: scipy answers r = nan; a flat series is simply "stable" for us (r = 0, p = 1).
    for x, y in (([0, 1], [2, 2]), ([0, 1, 2], [5, 5, 5])):
        flat = stats.linregress(x, y)
        assert (flat.slope, flat.rvalue, flat.pvalue) == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="identical"):
        stats.linregress([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="at least 2"):
        stats.linregress([1], [1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=3, max_size=40), st.floats(0.5, 40))
def test_student_t_tail_matches_scipy(values: list[float], df: float) -> None:
    for t in values[:5]:
        t = t / 1e5
        assert stats.student_t_sf(t, df) == pytest.approx(scipy.stats.t.sf(t, df), rel=1e-9, abs=1e-15)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=60))
def test_percentiles_mean_std_match_numpy(values: list[float]) -> None:
    ordered = sorted(values)
    for q in (0, 1, 25, 50, 75, 90, 95, 99, 100):
        assert stats.percentile(ordered, q) == pytest.approx(np.percentile(values, q), rel=1e-9, abs=1e-6)
    assert stats.mean(values) == pytest.approx(np.mean(values), rel=1e-9, abs=1e-6)
    assert stats.std(values) == pytest.approx(np.std(values), rel=1e-7, abs=1e-6)


def test_zscores_match_scipy() -> None:
    values = list(np.random.default_rng(3).normal(10, 2, 100))
    assert stats.zscores(values) == pytest.approx(list(scipy.stats.zscore(values)), rel=1e-9)
    assert stats.zscores([2.0, 2.0]) == [0.0, 0.0]
    assert stats.percentile([], 50) is None and stats.mean([]) is None and math.isnan(float("nan"))
