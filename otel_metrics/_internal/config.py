"""``configure()``: one call that sets up traces, metrics (and logs) with our processors, the OTel way.

Precedence is explicit: an argument, then the standard ``OTEL_*`` variable (read by the SDK and the exporters
themselves wherever they do), then the default. See ``providers`` for why a second call does not stack.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_metrics._internal.fast_processors import ContextAttributesSpanProcessor
from otel_metrics._internal.log_filter import CorrelationFilter
from otel_metrics._internal.operation_metrics import OperationAggregator, OperationMetricsExporter
from otel_metrics._internal.providers import SwappableMeterProvider, SwappableTracerProvider
from otel_metrics._internal.safety import internal_error, logger
from otel_metrics._internal.state import DURATION_BUCKETS, SCOPE_NAME, STATE, Settings, price_table_for
from processors.sdk import EnrichingSpanProcessor

__all__ = [
    "Telemetry",
    "build_span_processors",
    "configure",
    "flush_before_exit",
    "flush_on_sigterm",
    "resolve_protocol",
]

PROTOCOL_GRPC = "grpc"
PROTOCOL_HTTP = "http/protobuf"
DEFAULT_PROTOCOL = PROTOCOL_GRPC
_PROTOCOLS = (PROTOCOL_GRPC, PROTOCOL_HTTP)
# Seconds that exit (atexit) may spend flushing: bounded so an unreachable collector cannot hang the
# app's exit.
DEFAULT_EXIT_TIMEOUT_S = 5.0
# See _batch_span_processor: how dropped spans become visible.
_INTERNAL_METRICS_ENV = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
_SIGNAL_PATHS = {"traces": "v1/traces", "metrics": "v1/metrics", "logs": "v1/logs"}


def resolve_protocol(signal: str, protocol: str | None) -> str:
    """Argument, then OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL, then OTEL_EXPORTER_OTLP_PROTOCOL, then gRPC."""
    value = (
        protocol
        or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or DEFAULT_PROTOCOL
    ).strip()
    if value not in _PROTOCOLS:
        logger.error(
            "otel_metrics: unsupported OTLP protocol %r for %s (expected one of %s); using %s",
            value,
            signal,
            ", ".join(_PROTOCOLS),
            DEFAULT_PROTOCOL,
        )
        return DEFAULT_PROTOCOL
    return value


def _signal_endpoint(endpoint: str | None, protocol: str, signal: str) -> str | None:
    # None lets the exporter read OTEL_EXPORTER_OTLP_[<SIGNAL>_]ENDPOINT itself (it appends the HTTP path).
    if endpoint is None:
        return None
    if protocol == PROTOCOL_HTTP:
        return endpoint.rstrip("/") + "/" + _SIGNAL_PATHS[signal]
    return endpoint


def _headers(headers: Mapping[str, str] | str | None) -> dict[str, str] | None:
    if headers is None:
        return None
    if isinstance(headers, str):
        out: dict[str, str] = {}
        for item in headers.split(","):
            key, sep, value = item.partition("=")
            if sep and key.strip():
                out[key.strip().lower()] = value.strip()
        return out
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _span_exporter(protocol: str, endpoint: str | None, headers: dict[str, str] | None) -> SpanExporter:
    url = _signal_endpoint(endpoint, protocol, "traces")
    if protocol == PROTOCOL_HTTP:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPSpanExporter

        return HTTPSpanExporter(endpoint=url, headers=headers)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=url, headers=headers)


def _metric_exporter(protocol: str, endpoint: str | None, headers: dict[str, str] | None) -> MetricExporter:
    url = _signal_endpoint(endpoint, protocol, "metrics")
    if protocol == PROTOCOL_HTTP:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HTTPMetricExporter,
        )

        return HTTPMetricExporter(endpoint=url, headers=headers)
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(endpoint=url, headers=headers)


def _log_exporter(protocol: str, endpoint: str | None, headers: dict[str, str] | None) -> Any:
    url = _signal_endpoint(endpoint, protocol, "logs")
    if protocol == PROTOCOL_HTTP:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HTTPLogExporter

        return HTTPLogExporter(endpoint=url, headers=headers)
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

    return OTLPLogExporter(endpoint=url, headers=headers)


def build_span_processors(
    exporters: Iterable[SpanExporter], *, pricing: Any = None, redact: bool = True, meter_provider: Any = None
) -> list[SpanProcessor]:
    """Our processor chain: correlation and business on start, enrichment (cost, redaction) around each
    batch. The first exporter's enrichment is wrapped by the context processor (one registered processor
    fewer: see fast_processors.ContextAttributesSpanProcessor)."""
    table = price_table_for(pricing)
    enriching: list[SpanProcessor] = [
        EnrichingSpanProcessor(_batch_span_processor(exporter, meter_provider), price_table=table, redact=redact)
        for exporter in exporters
    ]
    if not enriching:
        return [ContextAttributesSpanProcessor()]
    return [ContextAttributesSpanProcessor(enriching[0]), *enriching[1:]]


def _batch_span_processor(exporter: SpanExporter, meter_provider: Any) -> BatchSpanProcessor:
    # The SDK counts spans dropped on a full queue (otel.sdk.processor.span.processed{error.type=queue_full})
    # only when OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED is on, read at construction. We switch it on for our
    # batch processor alone (unless the user chose), not for the whole SDK: the tracer's per-span internal
    # metrics would triple the metric work of every span.
    if meter_provider is None or _INTERNAL_METRICS_ENV in os.environ:
        return BatchSpanProcessor(exporter, meter_provider=meter_provider)
    with _ENV_LOCK:
        os.environ[_INTERNAL_METRICS_ENV] = "true"
        try:
            return BatchSpanProcessor(exporter, meter_provider=meter_provider)
        finally:
            os.environ.pop(_INTERNAL_METRICS_ENV, None)


_ENV_LOCK = threading.Lock()


def sdk_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


@dataclass
class Telemetry:
    """What ``configure()`` set up. ``shutdown()`` flushes and stops it; a later ``configure()``
    replaces it."""

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    logger_provider: Any = None
    disabled: bool = False
    resource: Resource | None = None
    _log_handler: logging.Handler | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def force_flush(self, timeout_s: float = 10.0) -> bool:
        """Export everything recorded so far; False if something did not make it in time. Never raises."""
        providers = (self.tracer_provider, self.meter_provider, self.logger_provider)
        return _force_flush(providers, timeout_s, "Telemetry.force_flush")

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Flush and stop every provider this call set up, within ``timeout_s`` (an unreachable collector
        cannot hold the caller longer: what is still unsent then is dropped). Idempotent, never raises."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
        _release_globals(self)
        _run_bounded(self._shutdown_providers, timeout_s)

    def _shutdown_providers(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            if provider is None:
                continue
            try:
                provider.shutdown()
            except Exception:
                internal_error("Telemetry.shutdown")


def _force_flush(providers: Iterable[Any], timeout_s: float, where: str) -> bool:
    """``force_flush`` every provider that has one (None and the API's no-op and proxy providers have none); False
    if one failed or ran out of time. Never raises."""
    ok = True
    millis = int(timeout_s * 1000)
    for provider in providers:
        force_flush = getattr(provider, "force_flush", None)
        if not callable(force_flush):
            continue
        try:
            ok = force_flush(millis) is not False and ok
        except Exception:
            internal_error(where)
            ok = False
    return ok


def _run_bounded(fn: Any, timeout_s: float, what: str = "shutdown") -> bool:
    """Run ``fn`` in a daemon thread and wait at most ``timeout_s``: the SDK's shutdown paths wait on exporter
    retries with their own (long) timeouts, which must not hang the app or its exit."""
    thread = threading.Thread(target=fn, name=f"otel_metrics-{what}", daemon=True)
    thread.start()
    thread.join(max(0.0, timeout_s))
    if thread.is_alive():
        logger.warning("otel_metrics: telemetry %s did not finish within %.1fs; unsent data dropped", what, timeout_s)
        return False
    return True


def flush_on_sigterm() -> None:
    """Flush on SIGTERM, then die of it as before. With the default disposition the process dies without running
    ``atexit`` (where telemetry is flushed), and uvicorn re-raises SIGTERM after draining its requests with the
    disposition it found. Installed only over the default and from the main thread: an app's own handler is left
    alone. Never raises."""
    try:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def flush_then_die(signum: int, frame: Any) -> None:
            try:
                flush_before_exit()
            finally:
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)

        signal.signal(signal.SIGTERM, flush_then_die)
    except Exception:
        internal_error("flush_on_sigterm")


def flush_before_exit(timeout_s: float = DEFAULT_EXIT_TIMEOUT_S) -> bool:
    """Export what the process's telemetry holds, within ``timeout_s``: ours if ``configure`` set it up, else the
    OTel global providers (the distro's, or the app's own SDK setup). For exits that skip ``atexit``: uvicorn
    re-raises SIGTERM after its graceful shutdown with the default handler back in place, so the process dies
    without running the SDK's exit flush. Never raises."""
    current = GLOBALS.current
    if current is not None:
        providers: tuple[Any, ...] = (current.tracer_provider, current.meter_provider, current.logger_provider)
    else:
        from opentelemetry._logs import get_logger_provider

        providers = (trace_api.get_tracer_provider(), metrics_api.get_meter_provider(), get_logger_provider())
    return _run_bounded(lambda: _force_flush(providers, timeout_s, "flush_before_exit"), timeout_s, "flush")


class _Globals:
    """Our delegating providers, installed as the OTel globals at most once per process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tracer_provider: SwappableTracerProvider | None = None
        self.meter_provider: SwappableMeterProvider | None = None
        self.logger_provider_set = False
        self.current: Telemetry | None = None
        self.atexit_registered = False

    def install(self) -> tuple[SwappableTracerProvider, SwappableMeterProvider]:
        if self.tracer_provider is None:
            self.tracer_provider = SwappableTracerProvider()
            trace_api.set_tracer_provider(self.tracer_provider)
            if trace_api.get_tracer_provider() is not self.tracer_provider:
                logger.warning(
                    "otel_metrics: a global TracerProvider was already set by someone else; spans from other "
                    "libraries go there, spans from otel_metrics helpers still reach our pipeline"
                )
        if self.meter_provider is None:
            self.meter_provider = SwappableMeterProvider()
            metrics_api.set_meter_provider(self.meter_provider)
        return self.tracer_provider, self.meter_provider


GLOBALS = _Globals()


def _release_globals(telemetry: Telemetry) -> None:
    # After shutdown the API globals hand out no-ops (not a stopped SDK provider that warns on every use).
    with GLOBALS.lock:
        if GLOBALS.current is not telemetry:
            return
        GLOBALS.current = None
        STATE.reset(STATE.settings, None)
        if GLOBALS.tracer_provider is not None:
            GLOBALS.tracer_provider.swap(trace_api.NoOpTracerProvider())
        if GLOBALS.meter_provider is not None:
            GLOBALS.meter_provider.swap(metrics_api.NoOpMeterProvider())


def _on_exit() -> None:
    current = GLOBALS.current
    if current is not None:
        current.shutdown(timeout_s=DEFAULT_EXIT_TIMEOUT_S)


def _resource(service_name: str | None, resource_attributes: Mapping[str, Any] | None) -> Resource:
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; what we pass wins over both.
    attrs: dict[str, Any] = {}
    if resource_attributes:
        attrs.update({str(k): v for k, v in resource_attributes.items()})
    if service_name:
        attrs[SERVICE_NAME] = service_name
    return Resource.create(attrs)


def configure(
    service_name: str | None = None,
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | str | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    pricing: Any = None,
    metric_dimensions: Iterable[str] = (),
    redact: bool = True,
    console: bool = False,
    logs: bool = False,
    _span_exporters: Iterable[SpanExporter] | None = None,
    _metric_exporters: Iterable[MetricExporter] | None = None,
) -> Telemetry:
    """Set up tracing and metrics (and logs with ``logs=True``) exported over OTLP, with our processors.

    Returns the new ``Telemetry``; the previous one (if any) is flushed and shut down. Never raises: a
    bad argument
    is logged and its default used. ``OTEL_SDK_DISABLED=true`` gives no-op providers.
    """
    try:
        return _configure(
            service_name,
            endpoint=endpoint,
            protocol=protocol,
            headers=headers,
            resource_attributes=resource_attributes,
            pricing=pricing,
            metric_dimensions=metric_dimensions,
            redact=redact,
            console=console,
            logs=logs,
            span_exporters=_span_exporters,
            metric_exporters=_metric_exporters,
        )
    except Exception:
        internal_error("configure")
        return Telemetry(disabled=True)


def _configure(
    service_name: str | None,
    *,
    endpoint: str | None,
    protocol: str | None,
    headers: Mapping[str, str] | str | None,
    resource_attributes: Mapping[str, Any] | None,
    pricing: Any,
    metric_dimensions: Iterable[str],
    redact: bool,
    console: bool,
    logs: bool,
    span_exporters: Iterable[SpanExporter] | None,
    metric_exporters: Iterable[MetricExporter] | None,
) -> Telemetry:
    dims = _dimensions(metric_dimensions)
    ops = OperationAggregator(DURATION_BUCKETS)
    with GLOBALS.lock:
        tracer_swap, meter_swap = GLOBALS.install()
        previous = GLOBALS.current
        if sdk_disabled():
            telemetry = Telemetry(disabled=True)
            tracer_swap.swap(trace_api.NoOpTracerProvider())
            meter_swap.swap(metrics_api.NoOpMeterProvider())
        else:
            telemetry = _build(
                service_name,
                endpoint=endpoint,
                protocol=protocol,
                headers=_headers(headers),
                resource_attributes=resource_attributes,
                pricing=pricing,
                redact=bool(redact),
                console=bool(console),
                logs=bool(logs),
                span_exporters=span_exporters,
                metric_exporters=metric_exporters,
                ops=ops,
            )
            assert telemetry.tracer_provider is not None and telemetry.meter_provider is not None
            tracer_swap.swap(telemetry.tracer_provider)
            meter_swap.swap(telemetry.meter_provider)
        GLOBALS.current = telemetry
        if not GLOBALS.atexit_registered:
            atexit.register(_on_exit)
            GLOBALS.atexit_registered = True
            flush_on_sigterm()
    tracer = telemetry.tracer_provider.get_tracer(SCOPE_NAME) if telemetry.tracer_provider else None
    STATE.reset(Settings(metric_dimensions=dims, redact=bool(redact), pricing=pricing), ops, tracer)
    STATE.instruments()  # the observable operation.calls/errors exist from now on
    if previous is not None:
        previous.shutdown()
    return telemetry


def _dimensions(metric_dimensions: Iterable[str]) -> tuple[str, ...]:
    if isinstance(metric_dimensions, str):
        metric_dimensions = (metric_dimensions,)
    out: list[str] = []
    for key in metric_dimensions or ():
        if not isinstance(key, str) or not key:
            logger.error("otel_metrics: metric_dimensions entries must be attribute names; ignoring %r", key)
            continue
        if key == "correlation.id":
            logger.error("otel_metrics: correlation.id never becomes a metric attribute (cardinality); ignored")
            continue
        out.append(key)
    return tuple(dict.fromkeys(out))


def _build(
    service_name: str | None,
    *,
    endpoint: str | None,
    protocol: str | None,
    headers: dict[str, str] | None,
    resource_attributes: Mapping[str, Any] | None,
    pricing: Any,
    redact: bool,
    console: bool,
    logs: bool,
    span_exporters: Iterable[SpanExporter] | None,
    metric_exporters: Iterable[MetricExporter] | None,
    ops: OperationAggregator,
) -> Telemetry:
    resource = _resource(service_name, resource_attributes)

    metric_exporters_: list[MetricExporter] = list(metric_exporters) if metric_exporters is not None else []
    if metric_exporters is None:
        metric_exporters_.append(_metric_exporter(resolve_protocol("metrics", protocol), endpoint, headers))
        if console:
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

            metric_exporters_.append(ConsoleMetricExporter())
    # Interval: None lets the reader read OTEL_METRIC_EXPORT_INTERVAL. Each exporter also carries the
    # pre-aggregated operation.duration (see operation_metrics).
    readers: list[MetricReader] = [
        PeriodicExportingMetricReader(OperationMetricsExporter(exporter, ops, SCOPE_NAME))
        for exporter in metric_exporters_
    ]
    meter_provider = MeterProvider(metric_readers=readers, resource=resource, shutdown_on_exit=False)

    exporters: list[SpanExporter] = list(span_exporters) if span_exporters is not None else []
    if span_exporters is None:
        exporters.append(_span_exporter(resolve_protocol("traces", protocol), endpoint, headers))
        if console:
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
    # Sampler: None lets the SDK read OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG.
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False, meter_provider=meter_provider)
    for processor in build_span_processors(exporters, pricing=pricing, redact=redact, meter_provider=meter_provider):
        tracer_provider.add_span_processor(processor)

    telemetry = Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider, resource=resource)
    if logs:
        _setup_logs(telemetry, resolve_protocol("logs", protocol), endpoint, headers)
    return telemetry


def _setup_logs(telemetry: Telemetry, protocol: str, endpoint: str | None, headers: dict[str, str] | None) -> None:
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(resource=telemetry.resource, shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(_log_exporter(protocol, endpoint, headers)))
    if not GLOBALS.logger_provider_set:
        set_logger_provider(provider)
        GLOBALS.logger_provider_set = True
    with warnings.catch_warnings():
        # Deprecated in favour of opentelemetry-instrumentation-logging's handler. That package is not a dependency
        # of ours on purpose: it registers an instrumentor that opentelemetry-instrument loads in every app, which
        # installs a second handler on the root logger (each record exported twice beside this one).
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(level=logging.NOTSET, logger_provider=provider)
    handler.addFilter(CorrelationFilter())
    logging.getLogger().addHandler(handler)
    telemetry.logger_provider = provider
    telemetry._log_handler = handler
