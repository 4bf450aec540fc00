"""Walking the shape every OTLP request shares: resource entries, scope entries, items.

Items are what the Collector counts (spans, log records, metric data points). Splitting keeps the resource and
scope (and, for metrics, the metric's name, unit, type and temporality) around every item, as pdata's split helpers
do; whole resource entries are moved with one ``append``/``extend`` each rather than item by item, which keeps
merging cheap in the protobuf C extension.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from processors.pdata.signals import SIGNALS, Request, Signal, new_request

__all__ = [
    "drop_bad_ids",
    "item_count",
    "iter_log_records",
    "iter_spans",
    "merge_into",
    "metric_points",
    "resource_entries",
    "scope_item_count",
    "take_items",
]

_TEMPORAL_KINDS = frozenset({"sum", "histogram", "exponential_histogram"})


def resource_entries(signal: Signal, request: Request) -> Any:
    """The request's repeated ``resource_*`` field."""
    return getattr(request, SIGNALS[signal].resource_field)


def metric_points(metric: Metric) -> int:
    """Data points of one metric (0 for a metric with no data set)."""
    kind = metric.WhichOneof("data")
    return 0 if kind is None else len(getattr(metric, kind).data_points)


def scope_item_count(signal: Signal, scope_entry: Any) -> int:
    """Items of one ``scope_*`` entry."""
    items = getattr(scope_entry, SIGNALS[signal].item_field)
    if signal is Signal.METRICS:
        return sum(metric_points(m) for m in items)
    return len(items)


def _resource_item_count(signal: Signal, resource_entry: Any) -> int:
    return sum(scope_item_count(signal, s) for s in getattr(resource_entry, SIGNALS[signal].scope_field))


def item_count(signal: Signal, request: Request) -> int:
    """Spans, metric data points or log records in a request (what the Collector's own metrics count)."""
    return sum(_resource_item_count(signal, entry) for entry in resource_entries(signal, request))


def iter_spans(request: ExportTraceServiceRequest) -> Iterator[tuple[Resource, Span]]:
    """Every span of a request with its resource."""
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                yield rs.resource, span


def iter_log_records(request: ExportLogsServiceRequest) -> Iterator[tuple[Resource, LogRecord]]:
    """Every log record of a request with its resource."""
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                yield rl.resource, record


def merge_into(signal: Signal, target: Request, source: Request) -> None:
    """Append every resource entry of ``source`` to ``target`` (a copy; ``source`` is left as it was)."""
    resource_entries(signal, target).extend(resource_entries(signal, source))


def _bad_spans(spans: Sequence[Span]) -> list[int]:
    # One comprehension, no call per span: this runs over every span a receiver accepts.
    return [
        i
        for i, span in enumerate(spans)
        if len(span.trace_id) != 16 or len(span.span_id) != 8 or len(span.parent_span_id) not in (0, 8)
    ]


def _bad_log_records(records: Sequence[LogRecord]) -> list[int]:
    return [
        i
        for i, record in enumerate(records)
        if len(record.trace_id) not in (0, 16) or len(record.span_id) not in (0, 8)
    ]


def drop_bad_ids(signal: Signal, request: Request) -> tuple[int, str]:
    """Remove spans/log records whose ids have the wrong length (in place); return (removed, first reason).

    Metrics carry ids only in exemplars, which are kept as they are.
    """
    if signal is Signal.METRICS:
        return 0, ""
    find_bad: Callable[[Any], list[int]] = _bad_spans if signal is Signal.TRACES else _bad_log_records
    spec = SIGNALS[signal]
    removed, reason = 0, ""
    for entry in resource_entries(signal, request):
        for scope_entry in getattr(entry, spec.scope_field):
            items = getattr(scope_entry, spec.item_field)
            bad = find_bad(items)
            if not bad:
                continue
            if not reason and signal is Signal.TRACES:
                first = items[bad[0]]
                reason = (
                    f"span {first.name!r}: trace_id must be 16 bytes and span_id 8 bytes "
                    f"(got {len(first.trace_id)} and {len(first.span_id)})"
                )
            elif not reason:
                reason = "log record: trace_id must be empty or 16 bytes, span_id empty or 8 bytes"
            # By index: comparing messages would compare them field by field, once per bad item.
            dropped = set(bad)
            keep = [item for i, item in enumerate(items) if i not in dropped]
            del items[:]
            items.extend(keep)
            removed += len(bad)
    return removed, reason


def _metric_shell(metric: Metric, kind: str) -> Metric:
    """A copy of ``metric`` without data points (name, description, unit, metadata, type, temporality)."""
    out = Metric(name=metric.name, description=metric.description, unit=metric.unit)
    out.metadata.extend(metric.metadata)
    src = getattr(metric, kind)
    dst = getattr(out, kind)
    dst.SetInParent()
    if kind in _TEMPORAL_KINDS:
        dst.aggregation_temporality = src.aggregation_temporality
    if kind == "sum":
        dst.is_monotonic = src.is_monotonic
    return out


def _take_metric_points(scope_entry: Any, head_scope: Any, left: int) -> int:
    """Move up to ``left`` data points from the front of ``scope_entry.metrics``; return how many moved."""
    metrics = scope_entry.metrics
    moved = whole = 0
    for metric in metrics:
        if moved == left:
            break
        n = metric_points(metric)
        if n <= left - moved:
            head_scope.metrics.append(metric)
            whole += 1
            moved += n
            continue
        kind = metric.WhichOneof("data")
        take = left - moved
        shell = _metric_shell(metric, kind)
        points = getattr(metric, kind).data_points
        getattr(shell, kind).data_points.extend(points[:take])
        del points[:take]
        head_scope.metrics.append(shell)
        moved += take
    del metrics[:whole]
    return moved


def _take_entries(signal: Signal, level: int, entries: Any, head_entries: Any, left: int) -> int:
    """Move up to ``left`` items from the front of ``entries`` (level 0: resource entries, 1: scope entries) into
    ``head_entries``: whole entries while they fit, then part of the next one; return how many are still to take."""
    spec = SIGNALS[signal]
    holder = "resource" if level == 0 else "scope"
    whole = 0
    for entry in entries:
        if left == 0:
            break
        count = _resource_item_count(signal, entry) if level == 0 else scope_item_count(signal, entry)
        if count <= left:
            head_entries.append(entry)
            whole += 1
            left -= count
            continue
        head_entry = head_entries.add()
        getattr(head_entry, holder).CopyFrom(getattr(entry, holder))
        head_entry.schema_url = entry.schema_url
        if level == 0:
            scopes, head_scopes = getattr(entry, spec.scope_field), getattr(head_entry, spec.scope_field)
            left = _take_entries(signal, 1, scopes, head_scopes, left)
        elif signal is Signal.METRICS:
            left -= _take_metric_points(entry, head_entry, left)
        else:
            items = getattr(entry, spec.item_field)
            getattr(head_entry, spec.item_field).extend(items[:left])
            del items[:left]
            left = 0
    del entries[:whole]
    return left


def take_items(signal: Signal, request: Request, n: int) -> Request:
    """Remove the first ``n`` items from ``request`` (in place) and return them as a new request.

    Resource/scope entries that end up empty in ``request`` are removed; entries with no items at all at the
    front travel with the head.
    """
    head = new_request(signal)
    _take_entries(signal, 0, resource_entries(signal, request), resource_entries(signal, head), n)
    return head
