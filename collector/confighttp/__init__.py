"""Serving HTTP, as upstream's ``confighttp`` does for every server of the Collector: one server implementation
(uvicorn, on a thread of its own per listener) with the same limits on every listener. Used by the OTLP/HTTP
receiver, health_check, the analytics API and the Prometheus endpoints (the exporter's and the collector's own).
"""

from __future__ import annotations

from collector.confighttp.body import BodyTooLarge, read_body
from collector.confighttp.limits import (
    ADMIN_LIMITS,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_REQUEST_BODY_SIZE,
    DEFAULT_MAX_REQUEST_HEADER_SIZE,
    DEFAULT_READ_HEADER_TIMEOUT,
    ServerLimits,
)
from collector.confighttp.scrape import scrape_app
from collector.confighttp.server import HTTPServer, run_on, split_endpoint

__all__ = [
    "ADMIN_LIMITS",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_REQUEST_BODY_SIZE",
    "DEFAULT_MAX_REQUEST_HEADER_SIZE",
    "DEFAULT_READ_HEADER_TIMEOUT",
    "BodyTooLarge",
    "HTTPServer",
    "ServerLimits",
    "read_body",
    "run_on",
    "scrape_app",
    "split_endpoint",
]
