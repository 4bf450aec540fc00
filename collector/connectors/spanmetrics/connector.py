"""The ``spanmetrics`` connector: R.E.D. metrics from spans (traces in, metrics out).

``consume`` only updates in-memory aggregates (the hot path); a periodic flush, and a final one at shutdown,
emits
``{namespace}.calls`` (monotonic sum) and ``{namespace}.duration`` (histogram) per service.name, span.name,
span.kind, status.code and the configured dimensions, so that the prometheus exporter exposes
``traces_span_metrics_calls_total`` and ``traces_span_metrics_duration_milliseconds_bucket``: what Jaeger's
Monitor tab and the usual Grafana dashboards query. Errors are the calls with
``status.code="STATUS_CODE_ERROR"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import TypeVar

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.component import Connector, Consumer, CreateSettings, Host, Request, Signal
from processors.pipeline import INLINE_ITEMS, RefusedError

from ._aggregates import Exemplar, ExponentialBuckets, Series, record_explicit
from .config import CUMULATIVE, DEFAULT_EXPLICIT_BUCKETS, Dimension, SpanMetricsConfig

SCOPE_NAME = "spanmetricsconnector"
OVERFLOW_ATTRIBUTE = "otel.metric.overflow"

_SERVICE_NAME = "service.name"
_KIND_NAMES = {v: Span.SpanKind.Name(v) for v in Span.SpanKind.values()}
_STATUS_NAMES = {v: Status.StatusCode.Name(v) for v in Status.StatusCode.values()}
_UNIT_DIVISOR = {"ms": 1e6, "s": 1e9}

_CUMULATIVE = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_DELTA = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA

Key = tuple[object, ...]

# Series of one metric over every resource, whatever aggregation_cardinality_limit allows per resource (it is
# upstream's, per resource, and resource_metrics_cache_size keeps 1,000 resources: 2 million series). Further
# combinations collapse into their resource's overflow series. As the prometheus exporter's max_series.
MAX_SERIES_TOTAL = 50_000
_KINDS = ("calls", "duration", "events")
_OVERFLOW_KEY: Key = (OVERFLOW_ATTRIBUTE,)


def _kv(key: str, value: AnyValue | str) -> KeyValue:
    if isinstance(value, str):
        return KeyValue(key=key, value=AnyValue(string_value=value))
    return KeyValue(key=key, value=value)


class _ResourceState:
    """Aggregates of one resource (one service instance)."""

    __slots__ = ("calls", "duration", "events", "resource")

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.calls: dict[Key, Series] = {}
        self.duration: dict[Key, Series] = {}
        self.events: dict[Key, Series] = {}


class SpanMetricsConnector(Connector):
    def __init__(self, settings: CreateSettings, config: SpanMetricsConfig, next_consumer: Consumer) -> None:
        self.settings = settings
        self.config = config
        self.next_consumer = next_consumer
        self._log = settings.logger
        h = config.histogram
        self._divisor = _UNIT_DIVISOR[h.unit]
        self._exponential_size = h.exponential.max_size if h.exponential is not None else 0
        buckets = h.explicit.buckets if h.explicit is not None else DEFAULT_EXPLICIT_BUCKETS
        # Configured in seconds (Durations); the histogram is in the configured unit.
        scale = 1000.0 if h.unit == "ms" else 1.0
        self._bounds = [float(b) * scale for b in buckets]
        excluded = set(config.exclude_dimensions)
        self._base = [d for d in ("service.name", "span.name", "span.kind", "status.code") if d not in excluded]
        self._calls_dims = list(config.dimensions) + list(config.calls_dimensions)
        self._duration_dims = list(config.dimensions) + list(h.dimensions)
        self._events_dims = list(config.dimensions) + list(config.events.dimensions)
        self._same_keys = not config.calls_dimensions and not h.dimensions
        self._delta = config.aggregation_temporality != CUMULATIVE
        self._exemplars_on = config.exemplars.enabled and config.exemplars.max_per_data_point > 0
        self._resources: OrderedDict[Key, _ResourceState] = OrderedDict()
        # Series per metric over every resource; bounded by max(limit, MAX_SERIES_TOTAL) when a limit is set.
        self._totals = dict.fromkeys(_KINDS, 0)
        limit = config.aggregation_cardinality_limit
        self._max_total = max(limit, MAX_SERIES_TOTAL) if limit else 0
        self._last_flush = time.time_ns()
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    # ---- lifecycle -----------------------------------------------------------------------------------------

    async def start(self, host: Host) -> None:
        self._task = asyncio.create_task(self._flush_loop(), name=f"spanmetrics flush {self.settings.id}")

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(float(self.config.metrics_flush_interval))
            try:
                await self.flush()
            except RefusedError as exc:
                # Pressure downstream (a memory_limiter): expected under load, no fault to trace back.
                lost = "this interval's delta counts are dropped" if self._delta else "sent again with the next flush"
                self._log.warning("spanmetrics %s: flush refused (%s); %s", self.settings.id, exc, lost)
            except Exception:
                # Keep flushing on later ticks: cumulative aggregates are still intact.
                self._log.exception("spanmetrics %s: flush failed", self.settings.id)

    # ---- hot path ------------------------------------------------------------------------------------------

    async def consume(self, signal: Signal, request: Request) -> None:
        if signal is Signal.TRACES:
            assert isinstance(request, ExportTraceServiceRequest)
            # A large request is aggregated a slice at a time, the loop (which serves gRPC) given back in between.
            # Not on a worker thread: the flush reads these aggregates on the loop.
            for _ in self._aggregate(request):
                await asyncio.sleep(0)

    def aggregate(self, request: ExportTraceServiceRequest) -> None:
        for _ in self._aggregate(request):
            pass

    def _aggregate(self, request: ExportTraceServiceRequest) -> Iterator[None]:
        """Record every span; yields between slices of INLINE_ITEMS spans."""
        # Expiration counts from when spans arrive, not from their timestamps: a client's clock (a span dated 1970
        # or 2554) must not decide how long a series is kept.
        received = time.time_ns()
        recorded = 0
        for rs in request.resource_spans:
            resource_attrs = {kv.key: kv.value for kv in rs.resource.attributes}
            state = self._resource_state(rs.resource, resource_attrs)
            service = resource_attrs.get(_SERVICE_NAME)
            service_name = service.string_value if service is not None else ""
            for ss in rs.scope_spans:
                for span in ss.spans:
                    if recorded and recorded % INLINE_ITEMS == 0:
                        yield
                        # Other requests ran meanwhile: they may have pushed this resource out of the cache.
                        state = self._resource_state(rs.resource, resource_attrs)
                    self._record(state, span, service_name, resource_attrs, received)
                    recorded += 1

    def _resource_state(self, resource: Resource, attrs: dict[str, AnyValue]) -> _ResourceState:
        wanted = self.config.resource_metrics_key_attributes
        items = ((k, attrs[k]) for k in wanted if k in attrs) if wanted else sorted(attrs.items())
        key = tuple((k, v.SerializeToString()) for k, v in items)
        state = self._resources.get(key)
        if state is None:
            state = self._resources[key] = _ResourceState(Resource(attributes=resource.attributes))
            if len(self._resources) > self.config.resource_metrics_cache_size:
                # Like upstream's LRU of resource metrics: the least recently updated resource is forgotten.
                _, forgotten = self._resources.popitem(last=False)
                for kind in _KINDS:
                    table = getattr(forgotten, kind)
                    self._totals[kind] -= len(table) - (_OVERFLOW_KEY in table)
        else:
            self._resources.move_to_end(key)
        return state

    def _record(self, state: _ResourceState, span: Span, service: str, resource: dict[str, AnyValue], now: int) -> None:
        base = []
        for name in self._base:
            if name == "service.name":
                base.append(service)
            elif name == "span.name":
                base.append(span.name)
            elif name == "span.kind":
                base.append(_KIND_NAMES.get(span.kind, "SPAN_KIND_UNSPECIFIED"))
            else:
                base.append(_STATUS_NAMES.get(span.status.code, "STATUS_CODE_UNSET"))
        span_attrs = {kv.key: kv.value for kv in span.attributes} if self._calls_dims or self._duration_dims else {}
        value = max(0, span.end_time_unix_nano - span.start_time_unix_nano) / self._divisor
        exemplar = (
            Exemplar(span.trace_id, span.span_id, value, span.end_time_unix_nano)
            if self._exemplars_on and span.trace_id
            else None
        )
        calls_key, calls_extra = self._key(base, self._calls_dims, span_attrs, resource)
        calls = self._series(state.calls, "calls", calls_key, base, calls_extra, histogram=False)
        calls.count += 1
        calls.last_updated_unix_nano = now
        if exemplar is not None:
            calls.add_exemplar(exemplar, self.config.exemplars.max_per_data_point)
        if not self.config.histogram.disable:
            if self._same_keys:
                dur_key, dur_extra = calls_key, calls_extra
            else:
                dur_key, dur_extra = self._key(base, self._duration_dims, span_attrs, resource)
            dur = self._series(state.duration, "duration", dur_key, base, dur_extra, histogram=True)
            dur.count += 1
            dur.sum += value
            dur.last_updated_unix_nano = now
            if dur.exponential is not None:
                dur.exponential.record(value)
            else:
                assert dur.bucket_counts is not None
                record_explicit(dur.bucket_counts, self._bounds, value)
            if exemplar is not None:
                dur.add_exemplar(exemplar, self.config.exemplars.max_per_data_point)
        if self.config.events.enabled and span.events:
            for event in span.events:
                event_attrs = {kv.key: kv.value for kv in event.attributes}
                merged = {**span_attrs, **event_attrs}
                key, extra = self._key([*base, event.name], self._events_dims, merged, resource)
                series = self._series(
                    state.events, "events", key, [*base, event.name], extra, histogram=False, event=True
                )
                series.count += 1
                series.last_updated_unix_nano = now

    @staticmethod
    def _key(
        base: list[str], dims: list[Dimension], span_attrs: dict[str, AnyValue], resource: dict[str, AnyValue]
    ) -> tuple[Key, list[tuple[str, AnyValue | str]]]:
        """The series key and the configured dimensions' values (span attribute, else resource, else
        default)."""
        if not dims:
            return tuple(base), []
        extra: list[tuple[str, AnyValue | str]] = []
        parts: list[object] = list(base)
        for d in dims:
            v = span_attrs.get(d.name)
            if v is None:
                v = resource.get(d.name)
            if v is not None:
                extra.append((d.name, v))
                parts.append(v.SerializeToString())
            elif d.default is not None:
                extra.append((d.name, d.default))
                parts.append(d.default)
            else:
                parts.append(None)  # dimension absent: omitted from the series
        return tuple(parts), extra

    def _series(
        self,
        table: dict[Key, Series],
        kind: str,
        key: Key,
        base: list[str],
        extra: list[tuple[str, AnyValue | str]],
        *,
        histogram: bool,
        event: bool = False,
    ) -> Series:
        series = table.get(key)
        if series is not None:
            return series
        limit = self.config.aggregation_cardinality_limit
        if limit and (len(table) >= limit or self._totals[kind] >= self._max_total):
            # Beyond the limit new combinations collapse into one overflow series (as upstream does).
            key = _OVERFLOW_KEY
            series = table.get(key)
            if series is not None:
                return series
            attributes = [KeyValue(key=OVERFLOW_ATTRIBUTE, value=AnyValue(bool_value=True))]
        else:
            names = list(self._base) + (["event.name"] if event else [])
            attributes = [_kv(n, v) for n, v in zip(names, base, strict=True)] + [_kv(n, v) for n, v in extra]
        start = self._last_flush if self._delta else time.time_ns()
        series = Series(attributes=attributes, start_time_unix_nano=start)
        if histogram:
            if self._exponential_size:
                series.exponential = ExponentialBuckets(self._exponential_size)
            else:
                series.bucket_counts = [0] * (len(self._bounds) + 1)
        table[key] = series
        self._totals[kind] += key != _OVERFLOW_KEY  # overflow series are not counted: one per resource at most
        return series

    # ---- flush ---------------------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Emit the aggregates to the metrics pipeline now (the timer and shutdown call this)."""
        async with self._flush_lock:
            request = self.build_request(time.time_ns())
            if request.resource_metrics:
                await self.next_consumer.consume(Signal.METRICS, request)

    def build_request(self, now: int) -> ExportMetricsServiceRequest:
        request = ExportMetricsServiceRequest()
        cfg = self.config
        temporality = _DELTA if self._delta else _CUMULATIVE
        expiration_ns = int(float(cfg.metrics_expiration) * 1e9)
        for key in list(self._resources):
            state = self._resources[key]
            if expiration_ns and not self._delta:
                for kind in _KINDS:
                    table = getattr(state, kind)
                    for k in [k for k, s in table.items() if now - s.last_updated_unix_nano > expiration_ns]:
                        del table[k]
                        self._totals[kind] -= k != _OVERFLOW_KEY
            if not (state.calls or state.duration or state.events):
                del self._resources[key]
                continue
            rm = request.resource_metrics.add()
            rm.resource.CopyFrom(state.resource)
            sm = rm.scope_metrics.add()
            sm.scope.name = SCOPE_NAME
            if state.calls:
                self._emit_sum(sm.metrics.add(), f"{cfg.namespace}.calls", state.calls.values(), temporality, now)
            if state.duration:
                self._emit_histogram(sm.metrics.add(), state.duration.values(), temporality, now)
            if state.events:
                self._emit_sum(sm.metrics.add(), f"{cfg.namespace}.events", state.events.values(), temporality, now)
            if self._delta:
                state.calls.clear()
                state.duration.clear()
                state.events.clear()
            else:
                for table in (state.calls, state.duration, state.events):
                    for s in table.values():
                        s.exemplars.clear()
        if self._delta:
            self._totals = dict.fromkeys(_KINDS, 0)
        self._last_flush = now
        return request

    @staticmethod
    def _exemplars(
        out: Iterable[Exemplar],
        target: metrics_pb2.NumberDataPoint
        | metrics_pb2.HistogramDataPoint
        | metrics_pb2.ExponentialHistogramDataPoint,
    ) -> None:
        for ex in out:
            e = target.exemplars.add()
            e.trace_id, e.span_id, e.as_double, e.time_unix_nano = (
                ex.trace_id,
                ex.span_id,
                ex.value,
                ex.time_unix_nano,
            )

    def _emit_sum(
        self, metric: metrics_pb2.Metric, name: str, series: Iterable[Series], temporality: int, now: int
    ) -> None:
        metric.name = name
        metric.sum.is_monotonic = True
        metric.sum.aggregation_temporality = temporality  # type: ignore[assignment]
        for s in series:
            dp = metric.sum.data_points.add()
            dp.attributes.extend(s.attributes)
            dp.start_time_unix_nano, dp.time_unix_nano, dp.as_int = s.start_time_unix_nano, now, s.count
            self._exemplars(s.exemplars, dp)

    def _emit_histogram(self, metric: metrics_pb2.Metric, series: Iterable[Series], temporality: int, now: int) -> None:
        metric.name = f"{self.config.namespace}.duration"
        metric.unit = self.config.histogram.unit
        if self._exponential_size:
            metric.exponential_histogram.aggregation_temporality = temporality  # type: ignore[assignment]
            for s in series:
                assert s.exponential is not None
                edp = _histogram_point(metric.exponential_histogram.data_points.add(), s, now)
                edp.scale = s.exponential.scale
                edp.zero_count = s.exponential.zero_count
                offset, counts = s.exponential.dense()
                edp.positive.offset = offset
                edp.positive.bucket_counts.extend(counts)
                self._exemplars(s.exemplars, edp)
            return
        metric.histogram.aggregation_temporality = temporality  # type: ignore[assignment]
        for s in series:
            assert s.bucket_counts is not None
            hdp = _histogram_point(metric.histogram.data_points.add(), s, now)
            hdp.explicit_bounds.extend(self._bounds)
            hdp.bucket_counts.extend(s.bucket_counts)
            self._exemplars(s.exemplars, hdp)


def create_connector(settings: CreateSettings, config: SpanMetricsConfig, next_consumer: Consumer) -> Connector:
    return SpanMetricsConnector(settings, config, next_consumer)


_HistogramPoint = TypeVar("_HistogramPoint", metrics_pb2.HistogramDataPoint, metrics_pb2.ExponentialHistogramDataPoint)


def _histogram_point(dp: _HistogramPoint, s: Series, now: int) -> _HistogramPoint:
    """``dp``, a new (explicit or exponential) histogram point of ``s``, with attributes, start and time, count and
    sum."""
    dp.attributes.extend(s.attributes)
    dp.start_time_unix_nano, dp.time_unix_nano = s.start_time_unix_nano, now
    dp.count, dp.sum = s.count, s.sum
    return dp
