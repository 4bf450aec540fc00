"""OTLP log records to rows of ``logs`` (column order = ``LOG_COLUMNS``).

Log records have no natural key, so ``log_id`` is a 16-byte BLAKE2b of the resource, scope and the serialized
record: a redelivered record maps to the same row. (Two byte-identical records in one resource and scope are
one row.)
"""

from __future__ import annotations

import hashlib
import time

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from ._values import ItemRecord, any_value, attributes_dict, clean_text, int2, int4, resource_columns, signed32, to_json

__all__ = ["LOG_COLUMNS", "log_records"]

LOG_COLUMNS: tuple[tuple[str, str], ...] = (
    ("log_id", "bytea"),
    ("time", "timestamptz"),
    ("observed_time", "timestamptz"),
    ("severity_number", "int2"),
    ("severity_text", "text"),
    ("body", "text"),
    ("body_json", "jsonb"),
    ("event_name", "text"),
    ("trace_id", "bytea"),
    ("span_id", "bytea"),
    ("flags", "int4"),
    ("service_name", "text"),
    ("scope_name", "text"),
    ("scope_version", "text"),
    ("correlation_id", "text"),
    ("attributes", "jsonb"),
    ("resource_attributes", "jsonb"),
    ("dropped_attributes_count", "int4"),
)


def log_records(request: ExportLogsServiceRequest) -> list[ItemRecord]:
    out: list[ItemRecord] = []
    now_us = time.time_ns() // 1000
    for rl in request.resource_logs:
        _, service_name, resource_json, resource_repairs = resource_columns(rl.resource)
        resource_bytes = rl.resource.SerializeToString(deterministic=True)
        for sl in rl.scope_logs:
            scope_name = sl.scope.name or None
            scope_version = sl.scope.version or None
            scope_bytes = sl.scope.SerializeToString(deterministic=True)
            for record in sl.log_records:
                repairs = list(resource_repairs)
                try:
                    h = hashlib.blake2b(resource_bytes, digest_size=16)
                    h.update(b"\x1e")
                    h.update(scope_bytes)
                    h.update(b"\x1e")
                    h.update(record.SerializeToString(deterministic=True))
                    observed_us = record.observed_time_unix_nano // 1000 or None
                    time_us = record.time_unix_nano // 1000 or observed_us or now_us
                    attrs = attributes_dict(record.attributes)
                    correlation = attrs.get("correlation.id")
                    if isinstance(correlation, str):
                        correlation = clean_text(correlation, "correlation.id", repairs)
                    else:
                        correlation = None
                    body_text: str | None = None
                    body_json: str | None = None
                    if record.HasField("body"):
                        body = any_value(record.body)
                        if isinstance(body, str):
                            body_text = clean_text(body, "body", repairs)
                        elif body is not None:
                            body_json = to_json(body, "body", repairs)
                            body_text = body_json
                    trace_id = record.trace_id or None
                    span_id = record.span_id or None
                    out.append(
                        ItemRecord(
                            (
                                h.digest(),
                                time_us,
                                observed_us,
                                int2(record.severity_number, "severity_number", repairs),
                                clean_text(record.severity_text, "severity_text", repairs) or None,
                                body_text,
                                body_json,
                                clean_text(getattr(record, "event_name", ""), "event_name", repairs) or None,
                                trace_id,
                                span_id,
                                signed32(record.flags),
                                service_name,
                                scope_name,
                                scope_version,
                                correlation,
                                to_json(attrs, "log attributes", repairs) if attrs else "{}",
                                resource_json,
                                int4(record.dropped_attributes_count, "dropped_attributes_count", repairs),
                            ),
                            record,
                            repairs,
                            trace_id,
                            span_id,
                        )
                    )
                except Exception as exc:  # one malformed item must not fail its batch
                    failure = f"{type(exc).__name__}: {exc}"
                    out.append(ItemRecord((), record, repairs, failure=failure))
    return out
