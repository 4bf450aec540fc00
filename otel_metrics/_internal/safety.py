"""Never break the app: our code logs its own failures instead of raising them into user code."""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("otel_metrics")

_reported: set[str] = set()
_reported_lock = threading.Lock()


def report_once(key: str, message: str, *args: object) -> None:
    """Log a warning the first time ``key`` is seen (bad input repeated per call must not flood the log)."""
    with _reported_lock:
        if key in _reported:
            return
        _reported.add(key)
    logger.warning(message, *args)


def internal_error(where: str) -> None:
    """Called from an ``except`` block in our code: log with traceback once per site, never raise."""
    with _reported_lock:
        first = where not in _reported
        _reported.add(where)
    if first:
        logger.exception("otel_metrics: internal error in %s (suppressed; the app keeps running)", where)
    else:
        logger.debug("otel_metrics: internal error in %s", where, exc_info=True)
