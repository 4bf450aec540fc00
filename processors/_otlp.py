"""Structural operations on OTLP request messages: merge two requests, split the first N items off one.

Items are what the Collector counts (spans, log records, metric data points). Splitting keeps the resource
and scope (and, for metrics, the metric's name, unit, type and temporality) around every item, as pdata's
split helpers do; whole resource entries are moved with one ``append``/``extend`` each rather than item by
item, which keeps merging cheap in the protobuf C extension.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from processors.pipeline import Request, Signal, new_request

__all__ = ["elements_containing", "merge_into", "resource_entries", "take_items"]

_LAYOUT: dict[Signal, tuple[str, str, str]] = {
    Signal.TRACES: ("resource_spans", "scope_spans", "spans"),
    Signal.LOGS: ("resource_logs", "scope_logs", "log_records"),
    Signal.METRICS: ("resource_metrics", "scope_metrics", "metrics"),
}

_TEMPORAL_KINDS = frozenset({"sum", "histogram", "exponential_histogram"})


def resource_entries(signal: Signal, request: Request) -> Any:
    """The request's repeated ``resource_*`` field."""
    return getattr(request, _LAYOUT[signal][0])


def merge_into(signal: Signal, target: Request, source: Request) -> None:
    """Append every resource entry of ``source`` to ``target`` (a copy; ``source`` is left as it was)."""
    field = _LAYOUT[signal][0]
    getattr(target, field).extend(getattr(source, field))


def _metric_points(metric: Metric) -> int:
    kind = metric.WhichOneof("data")
    return 0 if kind is None else len(getattr(metric, kind).data_points)


def _scope_items(signal: Signal, scope_entry: Any) -> int:
    items = getattr(scope_entry, _LAYOUT[signal][2])
    if signal is Signal.METRICS:
        return sum(_metric_points(m) for m in items)
    return len(items)


def _resource_items(signal: Signal, resource_entry: Any) -> int:
    return sum(_scope_items(signal, s) for s in getattr(resource_entry, _LAYOUT[signal][1]))


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
        n = _metric_points(metric)
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


def take_items(signal: Signal, request: Request, n: int) -> Request:
    """Remove the first ``n`` items from ``request`` (in place) and return them as a new request.

    Resource/scope entries that end up empty in ``request`` are removed; entries with no items at all at the
    front travel with the head.
    """
    head = new_request(signal)
    r_field, s_field, i_field = _LAYOUT[signal]
    resources = getattr(request, r_field)
    head_resources = getattr(head, r_field)
    left = n
    whole_resources = 0
    for entry in resources:
        if left == 0:
            break
        count = _resource_items(signal, entry)
        if count <= left:
            head_resources.append(entry)
            whole_resources += 1
            left -= count
            continue
        head_entry = head_resources.add()
        head_entry.resource.CopyFrom(entry.resource)
        head_entry.schema_url = entry.schema_url
        scopes = getattr(entry, s_field)
        head_scopes = getattr(head_entry, s_field)
        whole_scopes = 0
        for scope_entry in scopes:
            if left == 0:
                break
            count = _scope_items(signal, scope_entry)
            if count <= left:
                head_scopes.append(scope_entry)
                whole_scopes += 1
                left -= count
                continue
            head_scope = head_scopes.add()
            head_scope.scope.CopyFrom(scope_entry.scope)
            head_scope.schema_url = scope_entry.schema_url
            if signal is Signal.METRICS:
                left -= _take_metric_points(scope_entry, head_scope, left)
            else:
                items = getattr(scope_entry, i_field)
                getattr(head_scope, i_field).extend(items[:left])
                del items[:left]
                left = 0
        del scopes[:whole_scopes]
    del resources[:whole_resources]
    return head


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def elements_containing(data: bytes, field_number: int, needles: tuple[bytes, ...]) -> list[int] | None:
    """Indexes of the elements of the repeated message field ``field_number`` in the serialized message ``data``
    whose encoding contains one of ``needles``, in order.

    The cheap pre-check of the enrichment processors: an attribute key is written verbatim inside its item's
    encoding, so an item whose bytes contain none of the keys has none of them (an occurrence inside a value
    is a false positive the caller's exact check drops). Serializing in C, searching with ``bytes.find`` and
    walking only the field tags costs far less than reading every attribute key in python. None: the encoding
    holds a wire type OTLP does not use (groups), so every element must be looked at.
    """
    hits = sorted({pos for needle in needles for pos in _occurrences(data, needle)})
    if not hits:
        return []
    out: list[int] = []
    tag_wanted = (field_number << 3) | 2
    last = hits[-1]
    n_hits = len(hits)
    h = 0
    index = pos = 0
    end = len(data)
    while pos < end and pos <= last:
        tag = data[pos]  # OTLP's field numbers are < 16: a one-byte tag, else the general varint
        pos += 1
        if tag >= 0x80:
            tag, pos = _read_varint(data, pos - 1)
        wire = tag & 7
        if wire == 2:
            length = data[pos]  # inline the one- and two-byte lengths (items under 16 KiB)
            if length < 0x80:
                pos += 1
            elif data[pos + 1] < 0x80:
                length = (length & 0x7F) | (data[pos + 1] << 7)
                pos += 2
            else:
                length, pos = _read_varint(data, pos)
            stop = pos + length
            if tag == tag_wanted:
                while h < n_hits and hits[h] < pos:
                    h += 1
                if h < n_hits and hits[h] < stop:
                    out.append(index)
                index += 1
            pos = stop
        elif wire == 0:
            _, pos = _read_varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:  # groups (3, 4): not in OTLP; the caller looks at every element rather than guess
            return None
    return out


def _occurrences(data: bytes, needle: bytes) -> list[int]:
    found = []
    pos = data.find(needle)
    while pos >= 0:
        found.append(pos)
        pos = data.find(needle, pos + 1)  # overlapping occurrences too
    return found
