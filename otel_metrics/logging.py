"""Logging integration: ``CorrelationFilter`` puts ``correlation_id``, ``trace_id`` and ``span_id`` on
records.

``configure(logs=True)`` also exports log records over OTLP (a LoggerProvider and a handler on the root
logger,
with this filter). ``install()`` adds the filter to the root logger's handlers for text logs.
"""

from __future__ import annotations

import logging as _logging

from otel_metrics._internal.log_filter import CorrelationFilter

__all__ = ["CorrelationFilter", "install"]

DEFAULT_FORMAT = "%(asctime)s %(levelname)s [%(correlation_id)s %(trace_id)s] %(name)s: %(message)s"


def install(logger: _logging.Logger | None = None) -> CorrelationFilter:
    """Add the filter to every handler of ``logger`` (default: root), so formatters can use its fields."""
    target = logger or _logging.getLogger()
    flt = CorrelationFilter()
    for handler in target.handlers:
        if not any(isinstance(f, CorrelationFilter) for f in handler.filters):
            handler.addFilter(flt)
    return flt
