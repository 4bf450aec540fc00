"""The daily rollup cache: long windows with ragged edges read whole days from it and the edges from the hourly
rollups; late data for a cached day rebuilds that day; a day cannot be cached before it ends."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import psycopg
import pytest

from collector.analytics import daily
from collector.analytics.queries import Analytics
from collector.analytics.window import Filters, TimeWindow
from tests.collector.analytics import analytics_data


def test_ragged_window_and_late_data(pg_dsn: str) -> None:
    data = analytics_data.generate(n=3000, seed=5, days=4)
    analytics_data.load(pg_dsn, data)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        a = Analytics(conn)
        window = TimeWindow(data.start + timedelta(hours=5), data.end - timedelta(hours=3))

        def check(d: analytics_data.Dataset) -> None:
            m = d.mask(window.start, window.end)
            perf = {r.operation: r for r in a.performance(window)}
            for op, r in perf.items():
                mm = m & (d.operation == op)
                assert r.calls == mm.sum() and r.errors == d.error[mm].sum()
                assert r.avg_ms == pytest.approx(d.duration_ms[mm].mean(), rel=1e-9)
                assert r.p95_ms == pytest.approx(np.percentile(d.duration_ms[mm], 95), rel=0.01)
                assert r.max_ms == pytest.approx(d.duration_ms[mm].max())
            assert a.total_cost(window) == pytest.approx(d.cost[m].sum(), rel=1e-9)
            pct = a.percentiles(window, Filters(service="checkout"))
            mm = m & (d.service == "checkout")
            assert pct.p99 == pytest.approx(np.percentile(d.duration_ms[mm], 99), rel=0.01)
            assert pct.count == mm.sum()

        def check_hourly(d: analytics_data.Dataset) -> None:
            # Hour-resolution series over days: from the per-hour cache (no filter), the per-operation hourly
            # cache (service filter) and the hourly rollups (tenant filter) alike.
            for filters, mask in (
                (Filters(), np.ones(len(d.start_s), dtype=bool)),
                (Filters(service="checkout"), d.service == "checkout"),
                (Filters(tenant="acme"), d.tenant == "acme"),
            ):
                series = a.timeseries(window, filters, granularity="hour")
                buckets = {b.bucket.timestamp(): b for b in series}
                starts = np.floor(d.start_s / 3600) * 3600
                m = d.mask(window.start, window.end) & mask
                assert set(buckets) == set(np.unique(starts[m]))
                for start, b in buckets.items():
                    mm = m & (starts == start)
                    assert b.operations == mm.sum() and b.failures == d.error[mm].sum()
                    assert b.avg_ms == pytest.approx(d.duration_ms[mm].mean(), rel=1e-9)
                    assert b.p95_ms == pytest.approx(np.percentile(d.duration_ms[mm], 95), rel=0.01)
                    assert b.cost_usd == pytest.approx(d.cost[mm].sum(), rel=1e-9, abs=1e-12)
            series_by_op = a.operation_series(window, granularity="hour")
            starts = np.floor(d.start_s / 3600) * 3600
            m = d.mask(window.start, window.end)
            for (_, op), points in series_by_op.items():
                for b in points:
                    mm = m & (d.operation == op) & (starts == b.bucket.timestamp())
                    assert b.operations == mm.sum()

        check(data)
        check_hourly(data)
        days = conn.execute("SELECT day FROM analytics_rollup_days ORDER BY 1").fetchall()
        # the window covers 2 whole days; the first and last are cut by the edges, whose hours are read from the
        # hourly cache of those (complete) days
        assert [d[0] for d in days] == [data.start + timedelta(days=i) for i in range(4)]
        hours = conn.execute("SELECT count(DISTINCT bucket_start) FROM analytics_rollups_1h_all").fetchone()
        assert hours is not None and hours[0] == 4 * 24
        # Late data for a cached day: the next query rebuilds that day and sees it.
        late = analytics_data.generate(n=300, seed=99, days=4)
        late.trace_ids = [(10**12 + i).to_bytes(16, "big") for i in range(300)]
        analytics_data.load(pg_dsn, late)
        merged = data.concat(late)
        check(merged)
        check_hourly(merged)
        assert daily.refresh(conn, data.start + timedelta(days=1), data.start + timedelta(days=3)) == 0


def test_complete_days_only() -> None:
    from datetime import UTC, datetime

    start = datetime(2026, 11, 1, 5, tzinfo=UTC)
    end = datetime(2026, 11, 5, 7, tzinfo=UTC)
    assert daily.complete_days(start, end, now=end) == (
        datetime(2026, 11, 2, tzinfo=UTC),
        datetime(2026, 11, 5, tzinfo=UTC),
    )
    assert daily.complete_days(start, end, now=datetime(2026, 11, 3, 12, tzinfo=UTC)) == (
        datetime(2026, 11, 2, tzinfo=UTC),
        datetime(2026, 11, 3, tzinfo=UTC),
    )
    assert daily.complete_days(start, datetime(2026, 11, 2, 7, tzinfo=UTC), now=end) is None


def test_source_parts_read_the_caches() -> None:
    """Which table answers which hours: whole days from the daily cache, complete days' ragged hours from the
    hourly cache, the day still running from the hourly rollups."""
    from datetime import UTC, datetime

    from collector.analytics._sql import source_for

    day = datetime(2026, 11, 1, tzinfo=UTC)
    window = TimeWindow(day + timedelta(hours=5), day + timedelta(days=3, hours=7))
    whole = (day + timedelta(days=1), day + timedelta(days=3))
    cached_until = day + timedelta(days=3)  # the last day is still running
    src = source_for(window, Filters(), daily=whole, per_operation=True, cached_until=cached_until)
    assert [(p.table, p.params[:2]) for p in src.parts] == [
        ("analytics_rollups_1d_ops", list(whole)),
        ("analytics_rollups_1h_ops", [window.start, whole[0]]),
        ("span_rollups_1h", [cached_until, window.end]),
    ]
    hourly = source_for(window, Filters(), cached_until=cached_until, hourly_table="analytics_rollups_1h_all")
    assert [(p.table, p.params[:2]) for p in hourly.parts] == [
        ("analytics_rollups_1h_all", [window.start, cached_until]),
        ("span_rollups_1h", [cached_until, window.end]),
    ]


def test_running_day_hours(pg_dsn: str) -> None:
    """A long window ending now: the running day's ended hours come from the hourly cache (fingerprinted per hour,
    rebuilt after late data), the current hour from the hourly rollups; answers match numpy either way."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    data = analytics_data.generate(n=2000, seed=11, end=end, days=2)
    # nothing after now (the current hour is still running)
    data.start_s = np.minimum(data.start_s, now.timestamp() - 1.0)
    analytics_data.load(pg_dsn, data)
    window = TimeWindow(end - timedelta(hours=40), end)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        a = Analytics(conn)

        def check(d: analytics_data.Dataset) -> None:
            m = d.mask(window.start, window.end)
            for r in a.performance(window):
                mm = m & (d.operation == r.operation)
                assert r.calls == mm.sum() and r.errors == d.error[mm].sum()
                assert r.p95_ms == pytest.approx(np.percentile(d.duration_ms[mm], 95), rel=0.01)
            starts = np.floor(d.start_s / 3600) * 3600
            series = a.timeseries(window, granularity="hour")
            assert [b.bucket.timestamp() for b in series] == sorted(np.unique(starts[m]))
            for b in series:
                mm = m & (starts == b.bucket.timestamp())
                assert b.operations == mm.sum()
                assert b.p95_ms == pytest.approx(np.percentile(d.duration_ms[mm], 95), rel=0.01)

        check(data)
        hours = [r[0] for r in conn.execute("SELECT hour FROM analytics_rollup_hours ORDER BY 1").fetchall()]
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        assert hours == [midnight + timedelta(hours=h) for h in range(now.hour)]
        if not hours:
            return  # the first hour of a UTC day: nothing of today has ended yet
        # Late spans in an ended (cached) hour of today: that hour is rebuilt and counted.
        late = analytics_data.generate(n=200, seed=12, end=end, days=2)
        late.start_s = midnight.timestamp() + np.linspace(1.0, 3000.0, 200)
        late.trace_ids = [(10**12 + i).to_bytes(16, "big") for i in range(200)]
        analytics_data.load(pg_dsn, late)
        merged = data.concat(late)
        check(merged)
