"""OTLP metric data points (all five kinds) to rows of ``metric_points`` (column order = ``POINT_COLUMNS``).

``stream_id`` identifies a time series: a 16-byte BLAKE2b of the resource attributes, scope, metric name,
unit, type and the point's attributes (JSON with sorted keys, so attribute order does not matter). Unique with
``time``.

``UnchangedPoints`` keeps a cumulative stream from being stored again when nothing changed: the spanmetrics
connector (like any cumulative exporter) re-sends every series at every flush, and storing them all would add a
row per series per flush forever.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from ._values import ItemRecord, attributes_dict, clean_text, int2, resource_columns, signed32, to_json

__all__ = ["DEFAULT_REMEMBERED_STREAMS", "POINT_COLUMNS", "UnchangedPoints", "point_records"]

POINT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("stream_id", "bytea"),
    ("time", "timestamptz"),
    ("start_time", "timestamptz"),
    ("metric_name", "text"),
    ("metric_type", "text"),
    ("description", "text"),
    ("unit", "text"),
    ("temporality", "int2"),
    ("is_monotonic", "bool"),
    ("service_name", "text"),
    ("scope_name", "text"),
    ("scope_version", "text"),
    ("value", "float8"),
    ("value_int", "int8"),
    ("count", "int8"),
    ("sum", "float8"),
    ("min", "float8"),
    ("max", "float8"),
    ("bucket_counts", "int8[]"),
    ("explicit_bounds", "float8[]"),
    ("scale", "int4"),
    ("zero_count", "int8"),
    ("zero_threshold", "float8"),
    ("positive_offset", "int4"),
    ("positive_bucket_counts", "int8[]"),
    ("negative_offset", "int4"),
    ("negative_bucket_counts", "int8[]"),
    ("quantile_values", "jsonb"),
    ("exemplars", "jsonb"),
    ("flags", "int4"),
    ("attributes", "jsonb"),
    ("resource_attributes", "jsonb"),
)
_INT8_MAX = 2**63 - 1
_CUMULATIVE = 2  # AggregationTemporality
_TIME, _START, _TYPE, _TEMPORALITY = 1, 2, 4, 7
_EXEMPLARS = [c for c, _ in POINT_COLUMNS].index("exemplars")
# Streams whose last stored point is remembered (~200 bytes each); beyond it the least recently written is
# forgotten, and its next point is stored even if unchanged.
DEFAULT_REMEMBERED_STREAMS = 100_000


class UnchangedPoints:
    """Drops cumulative points (sums, histograms, summaries) equal to the last stored point of their stream but for
    their time and exemplars: the stream's value has not changed since, so a reader finds it in the earlier row.
    Gauges and delta points are always stored (a delta point is an increment, a gauge sample is an observation).

    Shared by the writers of one process (thread-safe). ``fresh`` filters a batch; ``remember`` records what was
    stored, called only once the batch's transaction committed (a failed write must not hide its points later).
    """

    def __init__(self, max_streams: int = DEFAULT_REMEMBERED_STREAMS) -> None:
        self._max = max_streams
        self._last: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._last)

    def fresh(self, records: Sequence[ItemRecord]) -> tuple[list[ItemRecord], list[tuple[bytes, bytes]]]:
        """(records to store, (stream, fingerprint) pairs to ``remember`` after they are stored)."""
        keep: list[ItemRecord] = []
        pending: dict[bytes, bytes] = {}
        with self._lock:
            last = self._last
            for record in records:
                row = record.row
                if not row or (row[_TYPE] != "summary" and row[_TEMPORALITY] != _CUMULATIVE):
                    keep.append(record)
                    continue
                fingerprint = _fingerprint(row)
                stream = row[0]
                if pending.get(stream, last.get(stream)) == fingerprint:
                    continue
                pending[stream] = fingerprint
                keep.append(record)
        return keep, list(pending.items())

    def remember(self, stored: Sequence[tuple[bytes, bytes]]) -> None:
        with self._lock:
            last = self._last
            for stream, fingerprint in stored:
                last[stream] = fingerprint
                last.move_to_end(stream)
            while len(last) > self._max:
                last.popitem(last=False)


def _fingerprint(row: tuple[Any, ...]) -> bytes:
    """Digest of everything in a point's row but its time and exemplars (repr: exact for floats and lists)."""
    content = row[_START:_EXEMPLARS] + row[_EXEMPLARS + 1 :]
    return hashlib.blake2b(repr(content).encode(), digest_size=16).digest()


def _u64(n: int, what: str, repairs: list[str]) -> int:
    if n > _INT8_MAX:
        repairs.append(f"{what} above bigint range: clamped")
        return _INT8_MAX
    return n


def _counts(counts: Any, what: str, repairs: list[str]) -> list[int]:
    values = list(counts)
    if values and max(values) > _INT8_MAX:
        return [_u64(v, what, repairs) for v in values]
    return values


def _exemplars(exemplars: Any, repairs: list[str]) -> str | None:
    if not exemplars:
        return None
    out = []
    for e in exemplars:
        kind = e.WhichOneof("value")
        out.append(
            {
                "time_unix_nano": e.time_unix_nano,
                "value": e.as_int if kind == "as_int" else e.as_double,
                "trace_id": e.trace_id.hex() or None,
                "span_id": e.span_id.hex() or None,
                "filtered_attributes": attributes_dict(e.filtered_attributes),
            }
        )
    return to_json(out, "exemplars", repairs)


def point_records(request: ExportMetricsServiceRequest) -> list[ItemRecord]:
    records: list[ItemRecord] = []
    for rm in request.resource_metrics:
        resource, service_name, resource_json, resource_repairs = resource_columns(rm.resource)
        resource_key = json.dumps(resource, sort_keys=True, default=str).encode()
        for sm in rm.scope_metrics:
            scope = (sm.scope.name or None, sm.scope.version or None)
            scope_key = f"{sm.scope.name}\x1f{sm.scope.version}".encode()
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                series_key = (resource_key, scope_key, f"{metric.name}\x1f{metric.unit}\x1f{kind}".encode())
                for point in getattr(metric, kind).data_points:
                    repairs = list(resource_repairs)
                    try:
                        row = _point_row(metric, kind, point, series_key, service_name, scope, resource_json, repairs)
                        records.append(ItemRecord(row, metric, repairs))
                    except Exception as exc:  # one malformed item must not fail its batch
                        failure = f"{type(exc).__name__}: {exc}"
                        records.append(ItemRecord((), metric, repairs, failure=failure))
    return records


def _point_row(
    metric: Any,
    kind: str,
    point: Any,
    series_key: tuple[bytes, bytes, bytes],
    service_name: str,
    scope: tuple[str | None, str | None],
    resource_json: str,
    repairs: list[str],
) -> tuple[Any, ...]:
    """One ``metric_points`` row (column order of the table) for one data point of ``metric``."""
    data = getattr(metric, kind)
    attrs = attributes_dict(point.attributes)
    h = hashlib.blake2b(digest_size=16)
    for part in (*series_key, json.dumps(attrs, sort_keys=True, default=str).encode()):
        h.update(part)
        h.update(b"\x1e")
    values = _POINT_VALUES[kind](point, repairs)
    temporality = getattr(data, "aggregation_temporality", None)
    return (
        h.digest(),
        point.time_unix_nano // 1000,
        point.start_time_unix_nano // 1000 or None,
        clean_text(metric.name, "metric name", repairs),
        kind,
        clean_text(metric.description, "metric description", repairs) or None,
        clean_text(metric.unit, "metric unit", repairs) or None,
        None if temporality is None else int2(temporality, "temporality", repairs),
        data.is_monotonic if kind == "sum" else None,
        service_name,
        *scope,
        *values,
        _exemplars(getattr(point, "exemplars", ()), repairs),
        signed32(getattr(point, "flags", 0)),
        to_json(attrs, "point attributes", repairs) if attrs else "{}",
        resource_json,
    )


# The value columns of a point, in table order: value, value_int, count, sum, min, max, bucket_counts,
# explicit_bounds, scale, zero_count, zero_threshold, positive offset and counts, negative offset and counts,
# quantiles. Each kind of point fills its own and leaves the others NULL.
_NO_VALUES: tuple[None, ...] = (None,) * 16


def _number_values(point: Any, repairs: list[str]) -> tuple[Any, ...]:
    if point.WhichOneof("value") == "as_int":
        return (float(point.as_int), point.as_int, *_NO_VALUES[2:])
    return (point.as_double, *_NO_VALUES[1:])


def _count_sum_min_max(point: Any, repairs: list[str]) -> tuple[Any, ...]:
    return (
        _u64(point.count, "count", repairs),
        point.sum if point.HasField("sum") else None,
        point.min if point.HasField("min") else None,
        point.max if point.HasField("max") else None,
    )


def _histogram_values(point: Any, repairs: list[str]) -> tuple[Any, ...]:
    count_sum_min_max = _count_sum_min_max(point, repairs)
    bucket_counts = _counts(point.bucket_counts, "bucket count", repairs)
    return (None, None, *count_sum_min_max, bucket_counts, list(point.explicit_bounds), *_NO_VALUES[8:])


def _exponential_histogram_values(point: Any, repairs: list[str]) -> tuple[Any, ...]:
    return (
        None,
        None,
        *_count_sum_min_max(point, repairs),
        None,
        None,
        point.scale,
        _u64(point.zero_count, "zero count", repairs),
        point.zero_threshold,
        point.positive.offset,
        _counts(point.positive.bucket_counts, "bucket count", repairs),
        point.negative.offset,
        _counts(point.negative.bucket_counts, "bucket count", repairs),
        None,
    )


def _summary_values(point: Any, repairs: list[str]) -> tuple[Any, ...]:
    quantiles = [{"quantile": q.quantile, "value": q.value} for q in point.quantile_values]
    return (
        None,
        None,
        _u64(point.count, "count", repairs),
        point.sum,
        *_NO_VALUES[4:15],
        to_json(quantiles, "quantile values", repairs),
    )


_POINT_VALUES: dict[str, Callable[[Any, list[str]], tuple[Any, ...]]] = {
    "gauge": _number_values,
    "sum": _number_values,
    "histogram": _histogram_values,
    "exponential_histogram": _exponential_histogram_values,
    "summary": _summary_values,
}


def finite_or_none(x: float | None) -> float | None:
    return x if x is None or math.isfinite(x) else None
