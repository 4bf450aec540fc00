"""Correlation id, trace id and span id on every log record (for formatters and the OTLP log exporter)."""

from __future__ import annotations

import logging

from opentelemetry import trace as trace_api

from processors.correlation import get_correlation_id

INVALID = ""


class CorrelationFilter(logging.Filter):
    """Adds ``correlation_id``, ``trace_id`` (32 hex) and ``span_id`` (16 hex) to records; "" when absent.

    Use ``%(correlation_id)s`` in a format string. The filter never drops a record and never raises.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.correlation_id = get_correlation_id() or INVALID
            ctx = trace_api.get_current_span().get_span_context()
            if ctx.is_valid:
                record.trace_id = format(ctx.trace_id, "032x")
                record.span_id = format(ctx.span_id, "016x")
            else:
                record.trace_id = INVALID
                record.span_id = INVALID
        except Exception:
            for name in ("correlation_id", "trace_id", "span_id"):
                if not hasattr(record, name):
                    setattr(record, name, INVALID)
        return True
