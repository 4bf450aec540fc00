"""Every statistic of the query layer against numpy/scipy on the same generated spans (loaded through the sink's
writer). Raw windows (<= 1 day) must be exact; rollup windows within the histogram's stated 1 %."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import pytest
import scipy.stats

from collector.analytics.models import PercentileSummary
from collector.analytics.queries import Analytics, Thresholds
from collector.analytics.window import Filters, TimeWindow
from tests.collector.analytics.analytics_data import Loaded

EXACT = 1e-9
HIST = 0.01  # (gamma - 1) / (gamma + 1) < 1 %


@pytest.fixture
def a(conn: psycopg.Connection) -> Analytics:
    return Analytics(conn, Thresholds(slow_ms=300.0, very_slow_ms=1000.0))


def _raw_window(dataset: Loaded) -> TimeWindow:
    return TimeWindow(dataset.data.end - timedelta(hours=12), dataset.data.end)


def _full_window(dataset: Loaded) -> TimeWindow:
    return TimeWindow(dataset.data.start, dataset.data.end)


@pytest.mark.parametrize("kind", ["raw", "rollup"])
def test_performance_per_operation(dataset: Loaded, a: Analytics, kind: str) -> None:
    d = dataset.data
    window = _raw_window(dataset) if kind == "raw" else _full_window(dataset)
    assert window.uses_rollups == (kind == "rollup")
    rows = a.performance(window)
    assert {r.exact for r in rows} == {kind == "raw"}
    in_window = d.mask(window.start, window.end)
    assert len(rows) == len(set(d.operation[in_window]))
    assert [r.calls for r in rows] == sorted((r.calls for r in rows), reverse=True)
    tol = EXACT if kind == "raw" else HIST
    for r in rows:
        m = in_window & (d.operation == r.operation)
        dur = d.duration_ms[m]
        assert r.service == d.service[m][0]
        assert r.calls == m.sum()
        assert r.errors == d.error[m].sum()
        assert r.error_rate == pytest.approx(d.error[m].mean(), rel=EXACT)
        assert r.avg_ms == pytest.approx(dur.mean(), rel=EXACT)
        assert r.max_ms == pytest.approx(dur.max(), rel=EXACT)
        for got, q in ((r.p50_ms, 50), (r.p95_ms, 95), (r.p99_ms, 99)):
            assert got == pytest.approx(np.percentile(dur, q), rel=tol)
        if kind == "raw":
            assert r.slow == (dur > 300).sum() and r.very_slow == (dur > 1000).sum()
        else:  # counted from histogram buckets: exact up to the one bucket holding the threshold
            assert (dur > 300 * 1.02).sum() <= r.slow <= (dur > 300 / 1.02).sum()
            assert (dur > 1000 * 1.02).sum() <= r.very_slow <= (dur > 1000 / 1.02).sum()


def test_performance_filters_and_grouping(dataset: Loaded, a: Analytics) -> None:
    d = dataset.data
    window = _full_window(dataset)
    rows = a.performance(window, Filters(tenant="acme", model="gpt-4o"))
    m = (d.tenant == "acme") & (d.model == "gpt-4o")
    assert sum(r.calls for r in rows) == m.sum()
    by_service = a.performance(window, group_by="service")
    assert {r.service: r.calls for r in by_service} == {s: int((d.service == s).sum()) for s in set(d.service)}
    assert {r.operation for r in by_service} == {"*"}
    page = a.performance(window, limit=2, offset=1)
    assert [r.operation for r in page] == [r.operation for r in a.performance(window)][1:3]
    # A user filter cannot be answered by rollups: exact from raw spans, even over 10 days.
    users = a.performance(window, Filters(user="user3"))
    assert all(r.exact for r in users)
    assert sum(r.calls for r in users) == (d.user == "user3").sum()


@pytest.mark.parametrize(("granularity", "hours"), [("hour", 12), ("hour", 72), ("day", 240)])
def test_timeseries(dataset: Loaded, a: Analytics, granularity: str, hours: int) -> None:
    d = dataset.data
    window = TimeWindow(d.end - timedelta(hours=hours), d.end)
    series = a.timeseries(window, Filters(service="agents"), granularity)
    step = 3600 if granularity == "hour" else 86400
    assert len(series) == hours * 3600 // step
    for b in series:
        start = b.bucket.timestamp()
        m = (d.start_s >= start) & (d.start_s < start + step) & (d.service == "agents")
        assert b.operations == m.sum() and b.failures == d.error[m].sum()
        assert b.avg_ms == pytest.approx(d.duration_ms[m].mean(), rel=EXACT)
        assert b.p95_ms == pytest.approx(np.percentile(d.duration_ms[m], 95), rel=EXACT if hours <= 24 else HIST)
        assert b.cost_usd == pytest.approx(d.cost[m].sum(), rel=EXACT)
        assert b.input_tokens == d.input_tokens[m].sum() and b.output_tokens == d.output_tokens[m].sum()
        assert b.quality_avg == pytest.approx(np.nanmean(d.quality[m]), rel=EXACT)


def test_agents_and_roles(dataset: Loaded, a: Analytics) -> None:
    d = dataset.data
    window = _raw_window(dataset)
    w = d.mask(window.start, window.end)
    for by, column in (("agent", d.agent), ("role", d.role)):
        rows = a.agents(window, by=by, budgets={"planner": (10.0, 2.5)})
        assert {r.agent for r in rows} == set(column[w & (column != "")])
        for r in rows:
            m = w & (column == r.agent)
            assert r.tasks == m.sum() and r.successes == (~d.error[m]).sum()
            assert r.median_ms == pytest.approx(np.median(d.duration_ms[m]), rel=EXACT)
            assert r.p95_ms == pytest.approx(np.percentile(d.duration_ms[m], 95), rel=EXACT)
            assert r.cost_usd == pytest.approx(d.cost[m].sum(), rel=EXACT)
            assert r.quality_avg == pytest.approx(d.quality[m].mean(), rel=EXACT)
            assert r.quality_median == pytest.approx(np.median(d.quality[m]), rel=EXACT)
            assert (r.quality_min, r.quality_max) == pytest.approx((d.quality[m].min(), d.quality[m].max()))
    planner = next(r for r in a.agents(window, budgets={"planner": (10.0, 2.5)}) if r.agent == "planner")
    assert (planner.budget_usd, planner.budget_remaining_usd, planner.budget_utilization) == (10.0, 7.5, 0.25)
    # Over 10 days: rollups; the median is within the histogram error, quality median unknown.
    long = a.agents(_full_window(dataset))
    for r in long:
        m = d.agent == r.agent
        assert r.median_ms == pytest.approx(np.median(d.duration_ms[m]), rel=HIST)
        assert r.quality_avg == pytest.approx(d.quality[m].mean(), rel=EXACT)
        assert r.quality_median is None


def test_users_usage_and_active(dataset: Loaded, a: Analytics) -> None:
    d = dataset.data
    window = _full_window(dataset)
    users = a.users(window)
    assert len(users) == len(set(d.user))
    for u in users:
        m = d.user == u.user
        assert u.requests == m.sum() and u.successes == (~d.error[m]).sum()
        assert u.avg_ms == pytest.approx(d.duration_ms[m].mean(), rel=EXACT)
        assert u.first_seen.timestamp() == pytest.approx(d.start_s[m].min(), abs=1e-6)
        assert u.last_seen.timestamp() == pytest.approx(d.start_s[m].max(), abs=1e-6)
    assert a.active_users(window) == len(set(d.user))
    top = a.top_operations(window, limit=2)
    _ops, counts = np.unique(d.operation, return_counts=True)
    assert [p.count for p in top] == sorted(counts, reverse=True)[:2]
    hourly = a.hourly_pattern(window)
    hours = ((d.start_s // 3600) % 24).astype(int)
    assert [p.count for p in hourly] == [int((hours == h).sum()) for h in range(24)]


def test_percentiles(dataset: Loaded, a: Analytics) -> None:
    d = dataset.data
    window = _full_window(dataset)
    qs = (50, 75, 90, 95, 99)

    def check(got: PercentileSummary, values: npt.NDArray[np.floating[Any]], tol: float) -> None:
        assert got.count == len(values)
        assert [got.p50, got.p75, got.p90, got.p95, got.p99] == pytest.approx(np.percentile(values, qs), rel=tol)
        assert got.median == got.p50
        assert (got.min, got.max) == pytest.approx((values.min(), values.max()), rel=EXACT)

    cost = a.percentiles(window, field="cost")
    values = d.cost[d.model != ""]
    check(cost, values, EXACT)
    assert cost.exact and cost.mean == pytest.approx(values.mean(), rel=EXACT)
    assert cost.std == pytest.approx(np.std(values), rel=1e-7)
    tokens = a.percentiles(window, Filters(model="gpt-4o"), field="tokens")
    check(tokens, (d.input_tokens + d.output_tokens)[d.model == "gpt-4o"].astype(float), EXACT)
    # spans without token counts (no model here) are skipped, not counted as 0 tokens
    check(a.percentiles(window, field="tokens"), (d.input_tokens + d.output_tokens)[d.model != ""].astype(float), EXACT)
    check(a.percentiles(window, field="attribute:queue.depth"), np.arange(len(d.start_s)) % 17.0, EXACT)
    check(a.percentiles(window, field="quality"), d.quality[~np.isnan(d.quality)], EXACT)
    duration = a.percentiles(window, field="duration")
    assert not duration.exact
    check(duration, d.duration_ms, HIST)
    assert duration.mean == pytest.approx(d.duration_ms.mean(), rel=EXACT)
    assert duration.std == pytest.approx(np.std(d.duration_ms), rel=HIST)
    raw = a.percentiles(_raw_window(dataset), Filters(service="search"))
    m = d.mask(_raw_window(dataset).start, d.end) & (d.service == "search")
    check(raw, d.duration_ms[m], EXACT)
    assert raw.std == pytest.approx(np.std(d.duration_ms[m]), rel=1e-7)
    with pytest.raises(ValueError, match="field"):
        a.percentiles(window, field="bogus")


def test_trends_match_scipy(dataset: Loaded, a: Analytics) -> None:
    d = dataset.data
    window = _full_window(dataset)
    trends = {t.metric: t for t in a.trends(window, Filters(operation="search.query"), "day")}
    day = ((d.start_s - d.start.timestamp()) // 86400).astype(int)
    m = d.operation == "search.query"
    x = np.arange(10.0)
    refs = {
        "calls": [float((m & (day == i)).sum()) for i in range(10)],
        "avg_ms": [d.duration_ms[m & (day == i)].mean() for i in range(10)],
        "error_rate": [d.error[m & (day == i)].mean() for i in range(10)],
        "cost_usd": [d.cost[m & (day == i)].sum() for i in range(10)],
    }
    for metric, y in refs.items():
        ref = scipy.stats.linregress(x, y)
        t = trends[metric]
        assert t.points == 10
        assert t.slope == pytest.approx(ref.slope, rel=1e-9, abs=1e-12)
        assert t.r_squared == pytest.approx(ref.rvalue**2, rel=1e-9, abs=1e-12)
        assert t.p_value == pytest.approx(ref.pvalue, rel=1e-7, abs=1e-15)
        expected = "stable" if ref.pvalue >= 0.05 else ("degrading" if ref.slope > 0 else "improving")
        if metric == "calls":
            expected = "stable" if ref.pvalue >= 0.05 else ("improving" if ref.slope > 0 else "degrading")
        assert t.verdict == expected
    # search.query was generated to slow down every day
    slope = trends["p95_ms"].slope
    assert trends["p95_ms"].verdict == "degrading" and slope is not None and slope > 0
    assert trends["quality_avg"].verdict == "insufficient_data"
    short = a.trends(TimeWindow(d.end - timedelta(days=2), d.end), granularity="day")
    assert {t.verdict for t in short} == {"insufficient_data"}


def test_outliers_match_scipy_zscores(dataset: Loaded, a: Analytics) -> None:
    d = dataset.data
    window = _full_window(dataset)
    found = a.outliers(window, threshold=3.0, limit=1000)
    expected = {}
    for op in set(d.operation):
        idx = np.flatnonzero(d.operation == op)
        z = scipy.stats.zscore(d.duration_ms[idx])
        for i, zi in zip(idx, z, strict=True):
            if abs(zi) >= 3.0:
                expected[d.trace_ids[i].hex()] = (zi, d.correlation[i])
    assert {o.trace_id for o in found} == set(expected)
    for o in found:
        assert o.z_score == pytest.approx(expected[o.trace_id][0], rel=1e-9)
        assert o.correlation_id == expected[o.trace_id][1]
    assert [abs(o.z_score) for o in found] == sorted((abs(o.z_score) for o in found), reverse=True)
    assert len(a.outliers(window, metric="cost", threshold=2.5, limit=5)) == 5


def test_costs(dataset: Loaded, a: Analytics) -> None:
    d = dataset.data
    window = _full_window(dataset)
    total = d.cost.sum()
    assert a.total_cost(window) == pytest.approx(total, rel=EXACT)
    for by, column in (
        ("model", d.model),
        ("provider", d.provider),
        ("tenant", d.tenant),
        ("agent", d.agent),
        ("user", d.user),
        ("operation", d.operation),
    ):
        rows = a.costs(window, by=by)
        assert sum(r.calls for r in rows) == len(d.start_s)
        for r in rows:
            m = column == ("" if r.key == "(none)" else r.key)
            assert r.cost_usd == pytest.approx(d.cost[m].sum(), rel=EXACT, abs=1e-12)
            assert r.successes == (~d.error[m]).sum()
            assert r.share == pytest.approx(d.cost[m].sum() / total, rel=EXACT, abs=1e-12)
            if r.successes and r.cost_usd:
                assert r.cost_per_success == pytest.approx(d.cost[m].sum() / (~d.error[m]).sum(), rel=EXACT)
        assert [r.cost_usd for r in rows] == sorted((r.cost_usd for r in rows), reverse=True)
    cid = d.correlation[0]
    found = a.correlation_cost(str(cid))
    m = d.correlation == cid
    assert found is not None and found.spans == m.sum()
    assert found.cost_usd == pytest.approx(d.cost[m].sum(), rel=EXACT, abs=1e-12)
    assert found.services == ",".join(sorted(set(d.service[m])))
    assert a.correlation_cost("nope") is None
    with pytest.raises(ValueError, match="by"):
        a.costs(window, by="colour")


def test_cost_projection(dataset: Loaded, a: Analytics) -> None:
    d = dataset.data
    now = d.end  # 2026-11-20: 19 days into November, 11 left
    p = a.cost_projection(now=now)
    mtd = d.cost[d.start_s >= p.month_start.timestamp()].sum()
    burn = d.cost[d.start_s >= (now - timedelta(days=7)).timestamp()].sum() / 7
    assert p.month_to_date_usd == pytest.approx(mtd, rel=EXACT)
    assert p.daily_burn_usd == pytest.approx(burn, rel=EXACT)
    assert p.days_remaining == pytest.approx(11.0)
    assert p.projected_month_usd == pytest.approx(mtd + 11 * burn, rel=EXACT)


def test_catalogue(dataset: Loaded, a: Analytics) -> None:
    assert a.services() == sorted(set(dataset.data.service))
    assert a.operations("checkout") == ["checkout.cart", "checkout.pay"]
