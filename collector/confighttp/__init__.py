"""Serving HTTP, as upstream's ``confighttp`` does for every server of the Collector: one server implementation
(uvicorn, on a thread of its own per listener) with the same limits on every listener. Used by the OTLP/HTTP
receiver, health_check, the analytics API and the Prometheus endpoints (the exporter's and the collector's own).
The defaults of the limits are in ``confighttp.limits``.
"""

from __future__ import annotations

from collector.confighttp.body import BodyTooLarge, read_body
from collector.confighttp.limits import ADMIN_LIMITS, ServerLimits
from collector.confighttp.scrape import scrape_app
from collector.confighttp.server import HTTPServer, run_on, split_endpoint

__all__ = [
    "ADMIN_LIMITS",
    "BodyTooLarge",
    "HTTPServer",
    "ServerLimits",
    "read_body",
    "run_on",
    "scrape_app",
    "split_endpoint",
]
