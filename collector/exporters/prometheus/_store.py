"""The exporter's memory: one entry per Prometheus series, merged from OTLP requests.

``merge`` is the hot path (called from ``consume``): metric-name translation is cached, a series' label text
is built
once when the series is first seen, and each data point only updates numbers. Delta sums and histograms are
accumulated into cumulative series (Prometheus has no delta); cumulative points replace the stored value
unless
they are older than it.

Bounded: series not updated within ``metric_expiration`` are dropped (when the store is rendered, and by
``merge`` too, so a store nobody scrapes does not grow), and at most ``max_series`` series are kept: points of
new series beyond it are dropped (counted, with a warning) until old series expire.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Exemplar

from ._naming import any_value_text, label_text, metric_name

_log = logging.getLogger("otel_metrics.collector.exporter.prometheus")
# At most one "series limit reached" warning per this many seconds; distinct type conflicts remembered (for
# their one warning each) before the memory of them is reset.
_LIMIT_WARNING_EVERY = 60.0
_CONFLICTS_REMEMBERED = 1000

COUNTER = "counter"
GAUGE = "gauge"
HISTOGRAM = "histogram"
SUMMARY = "summary"
INFO = "info"

_DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_NO_RECORDED_VALUE = 1  # DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK

# Resource attributes that become job/instance instead of target_info labels (compatibility spec).
_SERVICE_NAME = "service.name"
_SERVICE_NAMESPACE = "service.namespace"
_SERVICE_INSTANCE_ID = "service.instance.id"
_IDENTIFYING = frozenset({_SERVICE_NAME, _SERVICE_NAMESPACE, _SERVICE_INSTANCE_ID})
TARGET_INFO = "target_info"

Pairs = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class StoredExemplar:
    trace_id: str
    span_id: str
    value: float
    time_unix_nano: int


@dataclass(slots=True)
class NumberSeries:
    labels: str
    value: float = 0
    start: int = 0
    ts: int = 0
    updated: float = 0.0
    exemplar: StoredExemplar | None = None


@dataclass(slots=True)
class HistogramSeries:
    labels: str
    bounds: tuple[float, ...] = ()
    counts: list[int] = field(default_factory=list)  # per bucket, not cumulative; len(bounds) + 1
    sum: float | None = None
    count: int = 0
    start: int = 0
    ts: int = 0
    updated: float = 0.0
    exemplars: list[StoredExemplar | None] | None = None
    # Exponential histograms keep their own form and are converted to classic buckets when rendered.
    scale: int | None = None
    zero_threshold: float = 0.0
    zero_count: int = 0
    positive: dict[int, int] = field(default_factory=dict)
    negative: dict[int, int] = field(default_factory=dict)
    raw_exemplars: list[StoredExemplar] = field(default_factory=list)


@dataclass(slots=True)
class SummarySeries:
    labels: str
    quantiles: list[tuple[float, float]] = field(default_factory=list)
    sum: float = 0.0
    count: int = 0
    ts: int = 0
    updated: float = 0.0


Series = NumberSeries | HistogramSeries | SummarySeries


@dataclass(slots=True)
class Family:
    name: str  # the text-format name: a counter's includes "_total"
    kind: str
    help: str
    series: dict[Any, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoreOptions:
    namespace: str = ""
    const_labels: tuple[tuple[str, str], ...] = ()
    resource_to_telemetry: bool = False
    add_metric_suffixes: bool = True
    metric_expiration: float = 300.0
    max_series: int = 0  # 0: unlimited


def _pairs(attributes: Iterable[KeyValue]) -> Pairs:
    out = tuple((kv.key, any_value_text(kv.value)) for kv in attributes)
    return tuple(sorted(out)) if len(out) > 1 else out


def _exemplar(ex: Exemplar) -> StoredExemplar | None:
    if not ex.trace_id:
        return None
    value = ex.as_double if ex.WhichOneof("value") == "as_double" else float(ex.as_int)
    return StoredExemplar(ex.trace_id.hex(), ex.span_id.hex(), value, ex.time_unix_nano)


def _downscale(buckets: dict[int, int], by: int) -> dict[int, int]:
    if by <= 0:
        return buckets
    out: dict[int, int] = {}
    for index, n in buckets.items():
        key = index >> by
        out[key] = out.get(key, 0) + n
    return out


class MetricStore:
    """Series by family name; ``merge`` adds a request, ``families`` yields what to render (expiring old
    series)."""

    def __init__(self, options: StoreOptions, clock: Callable[[], float]) -> None:
        self.options = options
        self._clock = clock
        self._families: dict[str, Family] = {}
        self._conflicts_logged: set[tuple[str, str]] = set()
        self._series = 0  # series in all families, kept as they are added and expired
        self._next_sweep = 0.0
        self._limit_warned = float("-inf")
        self.dropped_points = 0  # points of new series refused because the store was full
        # Held per metric while merging and for a whole render: scrapes are served on another thread, and a large
        # request then delays a scrape by one metric's merge, not the whole request's.
        self.lock = threading.Lock()

    # ---- merge (hot path) ----------------------------------------------------------------------------------

    def merge(self, request: ExportMetricsServiceRequest) -> None:
        now = self._clock()
        opts = self.options
        if opts.metric_expiration > 0 and now >= self._next_sweep:
            with self.lock:
                self._expire(now)
        for rm in request.resource_metrics:
            res = _pairs(rm.resource.attributes)
            res_map = dict(res)
            name = res_map.get(_SERVICE_NAME, "")
            ns = res_map.get(_SERVICE_NAMESPACE, "")
            job = f"{ns}/{name}" if ns and name else name
            instance = res_map.get(_SERVICE_INSTANCE_ID, "")
            identity: Pairs = (("job", job), ("instance", instance))
            resource_pairs = opts.const_labels + identity
            if opts.resource_to_telemetry:
                resource_pairs += tuple(p for p in res if p[0] not in _IDENTIFYING)
            others = tuple(p for p in res if p[0] not in _IDENTIFYING)
            if others:
                with self.lock:
                    self._target_info(identity + others, now)
            for sm in rm.scope_metrics:
                scope = sm.scope
                base = (
                    *resource_pairs,
                    ("otel_scope_name", scope.name),
                    ("otel_scope_version", scope.version),
                )
                for metric in sm.metrics:
                    with self.lock:
                        self._merge_metric(metric, base, now)

    def _family(self, name: str, kind: str, help_: str, source: str) -> Family | None:
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = Family(name, kind, help_)
            return family
        if family.kind != kind:
            if (name, kind) not in self._conflicts_logged:
                if len(self._conflicts_logged) >= _CONFLICTS_REMEMBERED:
                    self._conflicts_logged.clear()
                self._conflicts_logged.add((name, kind))
                _log.warning(
                    "prometheus exporter: dropping metric %r as %s: %r is already exposed as a %s",
                    source,
                    kind,
                    name,
                    family.kind,
                )
            return None
        return family

    def _target_info(self, pairs: Pairs, now: float) -> None:
        family = self._family(TARGET_INFO, INFO, "Target metadata", TARGET_INFO)
        if family is None:
            return
        series = family.series.get(pairs)
        if series is None:
            if not self._room(now):
                return
            series = family.series[pairs] = NumberSeries(label_text(list(pairs)), 1)
            self._series += 1
        series.updated = now

    def _merge_metric(self, metric: Any, base: Pairs, now: float) -> None:
        opts = self.options
        data = metric.WhichOneof("data")
        if data == "sum":
            body = metric.sum
            kind = COUNTER if body.is_monotonic else GAUGE
            delta = body.aggregation_temporality == _DELTA
        elif data == "gauge":
            body, kind, delta = metric.gauge, GAUGE, False
        elif data in ("histogram", "exponential_histogram"):
            body = getattr(metric, data)
            kind, delta = HISTOGRAM, body.aggregation_temporality == _DELTA
        elif data == "summary":
            body, kind, delta = metric.summary, SUMMARY, False
        else:
            return
        name = metric_name(
            metric.name,
            metric.unit,
            kind=kind,
            namespace=opts.namespace,
            add_suffixes=opts.add_metric_suffixes,
        )
        # promtool flags a missing HELP; the OTel name is the most useful fallback (it maps back to the
        # source).
        family = self._family(name, kind, metric.description or metric.name, metric.name)
        if family is None:
            return
        series_map = family.series
        for dp in body.data_points:
            if dp.flags & _NO_RECORDED_VALUE:
                continue
            # The lookup key uses the attributes' serialized values (one C call each); the label text is only
            # computed when a series is first seen.
            raw = tuple(sorted((kv.key, kv.value.SerializeToString()) for kv in dp.attributes))
            key = (base, raw)
            series: Any = series_map.get(key)
            if series is None:
                if not self._room(now):
                    continue
                labels = label_text([*base, *_pairs(dp.attributes)])
                if kind == HISTOGRAM:
                    series = HistogramSeries(labels)
                elif kind == SUMMARY:
                    series = SummarySeries(labels)
                else:
                    series = NumberSeries(labels)
                series_map[key] = series
                self._series += 1
                fresh = True
            else:
                fresh = False
            if data == "sum" or data == "gauge":
                self._number(series, dp, delta, fresh)
            elif data == "histogram":
                self._histogram(series, dp, delta, fresh)
            elif data == "exponential_histogram":
                self._exponential(series, dp, delta, fresh)
            else:
                series.quantiles = [(q.quantile, q.value) for q in dp.quantile_values]
                series.sum, series.count, series.ts = dp.sum, dp.count, dp.time_unix_nano
            series.updated = now

    @staticmethod
    def _number(s: NumberSeries, dp: Any, delta: bool, fresh: bool) -> None:
        value = dp.as_double if dp.WhichOneof("value") == "as_double" else dp.as_int
        if delta and not fresh:
            s.value += value
            s.ts = max(s.ts, dp.time_unix_nano)
        elif fresh or dp.time_unix_nano >= s.ts or dp.start_time_unix_nano != s.start:
            # A newer point, or a restarted cumulative stream (new start time): it replaces the stored value.
            s.value, s.start, s.ts = value, dp.start_time_unix_nano, dp.time_unix_nano
        else:
            return  # an older point arriving late: Prometheus series must not go back in time
        if dp.exemplars:
            s.exemplar = _exemplar(dp.exemplars[-1]) or s.exemplar

    @staticmethod
    def _histogram(s: HistogramSeries, dp: Any, delta: bool, fresh: bool) -> None:
        bounds = tuple(dp.explicit_bounds)
        counts = list(dp.bucket_counts)
        if len(counts) != len(bounds) + 1:
            if not counts:
                counts = [0] * len(bounds) + [dp.count]
            else:
                _log.warning(
                    "prometheus exporter: histogram point with %d bounds and %d counts dropped",
                    len(bounds),
                    len(counts),
                )
                return
        has_sum = dp.HasField("sum")
        if delta and not fresh and s.bounds == bounds:
            s.counts = [a + b for a, b in zip(s.counts, counts, strict=True)]
            s.count += dp.count
            if has_sum:
                s.sum = (s.sum or 0.0) + dp.sum
            s.ts = max(s.ts, dp.time_unix_nano)
        elif fresh or delta or dp.time_unix_nano >= s.ts or dp.start_time_unix_nano != s.start:
            if s.bounds != bounds:
                s.exemplars = None
            s.bounds, s.counts, s.count = bounds, counts, dp.count
            s.sum = dp.sum if has_sum else None
            s.start, s.ts = dp.start_time_unix_nano, dp.time_unix_nano
        else:
            return
        if dp.exemplars:
            if s.exemplars is None:
                s.exemplars = [None] * (len(bounds) + 1)
            for ex in dp.exemplars:
                stored = _exemplar(ex)
                if stored is not None:
                    s.exemplars[bisect_left(bounds, stored.value)] = stored

    @staticmethod
    def _exponential(s: HistogramSeries, dp: Any, delta: bool, fresh: bool) -> None:
        pos = {dp.positive.offset + i: n for i, n in enumerate(dp.positive.bucket_counts) if n}
        neg = {dp.negative.offset + i: n for i, n in enumerate(dp.negative.bucket_counts) if n}
        scale = dp.scale
        has_sum = dp.HasField("sum")
        if delta and not fresh and s.scale is not None:
            # Merge at the coarser of the two scales (downscaling is exact: bucket i at scale k is i >> 1 at
            # k-1).
            target = min(scale, s.scale)
            s.positive = _downscale(s.positive, s.scale - target)
            s.negative = _downscale(s.negative, s.scale - target)
            for mine, theirs in (
                (s.positive, _downscale(pos, scale - target)),
                (s.negative, _downscale(neg, scale - target)),
            ):
                for index, n in theirs.items():
                    mine[index] = mine.get(index, 0) + n
            s.scale = target
            s.zero_count += dp.zero_count
            s.zero_threshold = max(s.zero_threshold, dp.zero_threshold)
            s.count += dp.count
            if has_sum:
                s.sum = (s.sum or 0.0) + dp.sum
            s.ts = max(s.ts, dp.time_unix_nano)
        elif fresh or delta or dp.time_unix_nano >= s.ts or dp.start_time_unix_nano != s.start:
            s.scale, s.positive, s.negative = scale, pos, neg
            s.zero_count, s.zero_threshold, s.count = dp.zero_count, dp.zero_threshold, dp.count
            s.sum = dp.sum if has_sum else None
            s.start, s.ts = dp.start_time_unix_nano, dp.time_unix_nano
            s.raw_exemplars = []
        else:
            return
        for ex in dp.exemplars:
            stored = _exemplar(ex)
            if stored is not None:
                s.raw_exemplars = [*s.raw_exemplars[-7:], stored]

    # ---- read side -----------------------------------------------------------------------------------------

    def families(self) -> list[Family]:
        """Live families, after dropping series not updated within ``metric_expiration``."""
        if self.options.metric_expiration > 0:
            self._expire(self._clock())
        return list(self._families.values())

    def series_count(self) -> int:
        return self._series

    # ---- bounds --------------------------------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        expiration = self.options.metric_expiration
        cutoff = now - expiration
        for name in list(self._families):
            family = self._families[name]
            stale = [k for k, s in family.series.items() if s.updated < cutoff]
            for k in stale:
                del family.series[k]
            self._series -= len(stale)
            if not family.series:
                del self._families[name]
        # A full sweep walks every series: at most ten per expiration period (and at least a second apart).
        self._next_sweep = now + max(1.0, expiration / 10)

    def _room(self, now: float) -> bool:
        """Whether a new series may be added; counts and (rarely) reports the point dropped when not."""
        limit = self.options.max_series
        if not limit or self._series < limit:
            return True
        if self.options.metric_expiration > 0 and now >= self._next_sweep:
            self._expire(now)
            if self._series < limit:
                return True
        self.dropped_points += 1
        if now - self._limit_warned >= _LIMIT_WARNING_EVERY:
            self._limit_warned = now
            _log.warning(
                "prometheus exporter: %d series (max_series): points of new series are dropped until old ones "
                "expire (%d so far); an attribute with unbounded values is the usual cause",
                limit,
                self.dropped_points,
            )
        return False


def exponential_to_classic(s: HistogramSeries) -> tuple[tuple[float, ...], list[int]]:
    """Classic ``le`` buckets equivalent to an exponential histogram's populated buckets.

    Bucket ``i`` at scale ``k`` holds values in (base**i, base**(i+1)] with base = 2**(2**-k), so its upper
    bound
    is an exact ``le``; negative buckets mirror that below zero, and the zero bucket ends at
    ``zero_threshold``.
    Only populated buckets are emitted, which keeps the cumulative counts exact at every emitted bound.
    """
    assert s.scale is not None
    factor = 2.0**-s.scale
    pairs: list[tuple[float, int]] = []
    for index in sorted(s.negative, reverse=True):
        pairs.append((-(2.0 ** (index * factor)), s.negative[index]))
    if s.zero_count or s.negative or not s.positive:
        pairs.append((s.zero_threshold, s.zero_count))
    for index in sorted(s.positive):
        pairs.append((2.0 ** ((index + 1) * factor), s.positive[index]))
    bounds: list[float] = []
    counts: list[int] = []
    for bound, n in pairs:
        if bounds and bound <= bounds[-1]:
            counts[-1] += n  # rounding made two bounds equal: merge rather than emit a non-increasing le
        else:
            bounds.append(bound)
            counts.append(n)
    counts.append(max(0, s.count - sum(counts)))
    return tuple(bounds), counts
