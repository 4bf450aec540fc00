"""The ``prometheus`` exporter: OTLP metrics in, a Prometheus/OpenMetrics scrape endpoint out.

We do not use prometheus_client: it is not a dependency, and its registry models instruments, not arbitrary
streams arriving from other processes. The translation (names, units, delta→cumulative, target_info,
exemplars)
is the whole job of this exporter, so it is done here directly from the OTLP messages into pre-rendered
label text.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from collector.component import CreateSettings, Exporter, Host, Request, Signal
from collector.confighttp import ADMIN_LIMITS, HTTPServer, scrape_app

from ._render import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, render, wants_openmetrics
from ._store import MetricStore, StoreOptions
from .config import PrometheusExporterConfig, TLSServerConfig


def store_options(config: PrometheusExporterConfig) -> StoreOptions:
    return StoreOptions(
        namespace=config.namespace,
        const_labels=tuple(sorted(config.const_labels.items())),
        resource_to_telemetry=config.resource_to_telemetry_conversion.enabled,
        add_metric_suffixes=config.add_metric_suffixes,
        metric_expiration=float(config.metric_expiration),
        max_series=config.max_series,
    )


def _ssl_context(tls: TLSServerConfig) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = {
        "1.0": ssl.TLSVersion.TLSv1,
        "1.1": ssl.TLSVersion.TLSv1_1,
        "1.2": ssl.TLSVersion.TLSv1_2,
        "1.3": ssl.TLSVersion.TLSv1_3,
    }[tls.min_version]
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file:
        ctx.load_verify_locations(tls.client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class PrometheusExporter(Exporter):
    def __init__(
        self,
        settings: CreateSettings,
        config: PrometheusExporterConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.config = config
        self.store = MetricStore(store_options(config), clock)
        self._server: HTTPServer | None = None

    @property
    def port(self) -> int:
        """The bound port (after start); with endpoint ``127.0.0.1:0`` the ephemeral one."""
        return self._server.port if self._server is not None else 0

    async def start(self, host: Host) -> None:
        tls = self.config.tls
        ctx = _ssl_context(tls) if tls is not None and tls.cert_file else None
        self._server = HTTPServer(
            scrape_app(self._scrape),
            self.config.endpoint,
            ssl_context=ctx,
            limits=ADMIN_LIMITS,
            name=f"prometheus ({self.settings.id})",
        )
        await self._server.start()

    async def shutdown(self) -> None:
        if self._server is not None:
            await self._server.shutdown()

    async def consume(self, signal: Signal, request: Request) -> None:
        if signal is Signal.METRICS:
            assert isinstance(request, ExportMetricsServiceRequest)
            self.store.merge(request)

    def render(self, openmetrics: bool = False) -> str:
        with self.store.lock:
            return render(self.store.families(), openmetrics=openmetrics, send_timestamps=self.config.send_timestamps)

    def _scrape(self, accept: str) -> tuple[str, bytes]:
        om = self.config.enable_open_metrics and wants_openmetrics(accept)
        return (OPENMETRICS_CONTENT_TYPE if om else TEXT_CONTENT_TYPE), self.render(om).encode()


def exposition(request: ExportMetricsServiceRequest, accept: str) -> tuple[str, bytes]:
    """(content type, body) of ``request`` alone as a scrape would show it, negotiated from an Accept header: what
    the collector's own telemetry serves (the same naming rules as everything this exporter exposes)."""
    store = MetricStore(StoreOptions(metric_expiration=0.0), time.monotonic)
    store.merge(request)
    om = wants_openmetrics(accept)
    text = render(store.families(), openmetrics=om, send_timestamps=False)
    return (OPENMETRICS_CONTENT_TYPE if om else TEXT_CONTENT_TYPE), text.encode()


def create_exporter(settings: CreateSettings, config: PrometheusExporterConfig) -> PrometheusExporter:
    return PrometheusExporter(settings, config)
