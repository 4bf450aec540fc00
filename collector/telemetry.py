"""The collector's own telemetry: an SDK MeterProvider and a Prometheus endpoint (default 127.0.0.1:8888).

Components record through ``CreateSettings.meter`` (``meter_provider().get_meter(...)``). The provider is
ours, not the global one, so an app embedding the collector keeps its own. Scrapes collect on demand through
an in-memory reader, encode to OTLP and reuse the prometheus exporter's translation, so self-telemetry follows
the same naming rules (counters get ``_total``, units become suffixes) as everything else we expose.
"""

from __future__ import annotations

import os
import resource
import threading
import time
import uuid
from collections.abc import Iterable

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource

from collector.confighttp import ADMIN_LIMITS, HTTPServer, scrape_app
from collector.exporters.prometheus import exposition as render_exposition

__all__ = [
    "DEFAULT_ADDRESS",
    "SERVICE_NAME",
    "TelemetryServer",
    "collect",
    "exposition",
    "meter_provider",
    "serve",
]

DEFAULT_ADDRESS = "127.0.0.1:8888"
SERVICE_NAME = "otel-metrics-collector"
SCOPE_NAME = "otel_metrics.collector"

_START = time.monotonic()
_lock = threading.Lock()
_provider: MeterProvider | None = None
_reader: InMemoryMetricReader | None = None


def _rss_bytes() -> int:
    """Current resident set size: /proc on Linux, else the peak from getrusage (the stdlib's best)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if os.uname().sysname == "Darwin" else peak * 1024


def _observe_rss(_: CallbackOptions) -> Iterable[Observation]:
    yield Observation(_rss_bytes())


def _observe_uptime(_: CallbackOptions) -> Iterable[Observation]:
    yield Observation(time.monotonic() - _START)


def meter_provider() -> MeterProvider:
    """The collector's MeterProvider (created once; not the global provider)."""
    global _provider, _reader
    with _lock:
        if _provider is None:
            _reader = InMemoryMetricReader()
            _provider = MeterProvider(
                metric_readers=[_reader],
                resource=Resource.create({"service.name": SERVICE_NAME, "service.instance.id": str(uuid.uuid4())}),
            )
            meter = _provider.get_meter(SCOPE_NAME)
            # Named as the upstream Collector's legacy self-metrics so existing dashboards find them; the unit
            # is in the description, not the name (a unit would add a _bytes/_seconds suffix).
            meter.create_observable_gauge(
                "otelcol_process_memory_rss",
                [_observe_rss],
                description="Resident set size of the collector (bytes).",
            )
            meter.create_observable_gauge(
                "otelcol_process_uptime",
                [_observe_uptime],
                description="Seconds since the collector started.",
            )
        return _provider


def collect() -> ExportMetricsServiceRequest:
    """Collect every instrument now, as an OTLP request."""
    meter_provider()
    assert _reader is not None
    data = _reader.get_metrics_data()
    return encode_metrics(data) if data is not None else ExportMetricsServiceRequest()


def exposition(openmetrics: bool = False) -> str:
    # The SDK reader is cumulative, so each scrape renders one collection afresh.
    accept = "application/openmetrics-text" if openmetrics else ""
    return render_exposition(collect(), accept)[1].decode()


class TelemetryServer:
    """Handle returned by ``serve``: ``port`` (the bound one) and ``close()``."""

    def __init__(self, server: HTTPServer) -> None:
        self._server = server

    @property
    def port(self) -> int:
        return self._server.port

    async def close(self) -> None:
        await self._server.shutdown()


async def serve(address: str = DEFAULT_ADDRESS) -> TelemetryServer:
    """Serve the collector's own metrics in Prometheus format on ``address``/metrics (port 0: ephemeral)."""
    server = HTTPServer(
        scrape_app(lambda accept: render_exposition(collect(), accept)),
        address,
        limits=ADMIN_LIMITS,
        name="telemetry",
    )
    await server.start()
    return TelemetryServer(server)
