"""Global providers that can be re-pointed: why a second ``configure()`` does not stack.

The OpenTelemetry API lets a process set its global tracer/meter provider once. ``configure()`` therefore sets
*our* delegating providers once, and every later ``configure()`` builds a fresh SDK provider pipeline,
points the
delegating providers at it and shuts the previous one down (flushing it). Tracers, meters and instruments that
libraries obtained earlier (e.g. FastAPI instrumentation at import time) follow the swap because they are
delegating objects too. The extra cost is one Python call per span start or measurement.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.metrics import Meter, MeterProvider, NoOpMeterProvider
from opentelemetry.metrics._internal import _ProxyMeter
from opentelemetry.metrics._internal.instrument import (
    _ProxyCounter,
    _ProxyGauge,
    _ProxyHistogram,
    _ProxyInstrument,
    _ProxyObservableCounter,
    _ProxyObservableGauge,
    _ProxyObservableUpDownCounter,
    _ProxyUpDownCounter,
)
from opentelemetry.util.types import Attributes

__all__ = ["SwappableMeterProvider", "SwappableTracerProvider"]


class _SwappableTracer(trace_api.Tracer):
    __slots__ = ("_args", "_delegate")

    def __init__(self, args: tuple[Any, ...], delegate: trace_api.Tracer) -> None:
        self._args = args
        self._delegate = delegate

    def start_span(self, *args: Any, **kwargs: Any) -> trace_api.Span:
        return self._delegate.start_span(*args, **kwargs)

    def start_as_current_span(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> AbstractContextManager[trace_api.Span]:
        return self._delegate.start_as_current_span(*args, **kwargs)


class SwappableTracerProvider(trace_api.TracerProvider):
    """Hands out tracers that delegate to the current SDK provider's tracers."""

    def __init__(self, delegate: trace_api.TracerProvider | None = None) -> None:
        self._lock = threading.Lock()
        self._delegate: trace_api.TracerProvider = delegate or trace_api.NoOpTracerProvider()
        self._tracers: weakref.WeakSet[_SwappableTracer] = weakref.WeakSet()

    @property
    def delegate(self) -> trace_api.TracerProvider:
        return self._delegate

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> trace_api.Tracer:
        args = (instrumenting_module_name, instrumenting_library_version, schema_url, attributes)
        with self._lock:
            tracer = _SwappableTracer(args, self._delegate.get_tracer(*args))
            self._tracers.add(tracer)
        return tracer

    def swap(self, delegate: trace_api.TracerProvider) -> trace_api.TracerProvider:
        """Point every tracer at ``delegate``; returns the previous delegate (the caller shuts it down)."""
        with self._lock:
            old, self._delegate = self._delegate, delegate
            for tracer in list(self._tracers):
                tracer._delegate = delegate.get_tracer(*tracer._args)
        return old


class _SwappableMeter(_ProxyMeter):
    """A proxy meter whose instruments are always proxies, so they can be re-pointed more than once."""

    def _keep(self, proxy: _ProxyInstrument[Any]) -> Any:
        with self._lock:
            self._instruments.append(proxy)  # type: ignore[arg-type]
            if self._real_meter is not None:
                proxy.on_meter_set(self._real_meter)
        return proxy

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Any:
        return self._keep(_ProxyCounter(name, unit, description))

    def create_up_down_counter(self, name: str, unit: str = "", description: str = "") -> Any:
        return self._keep(_ProxyUpDownCounter(name, unit, description))

    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
    ) -> Any:
        return self._keep(
            _ProxyHistogram(
                name,
                unit,
                description,
                explicit_bucket_boundaries_advisory=explicit_bucket_boundaries_advisory,
            )
        )

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> Any:
        return self._keep(_ProxyGauge(name, unit, description))

    def create_observable_counter(self, name: str, callbacks: Any = None, unit: str = "", description: str = "") -> Any:
        return self._keep(_ProxyObservableCounter(name, callbacks, unit=unit, description=description))

    def create_observable_gauge(self, name: str, callbacks: Any = None, unit: str = "", description: str = "") -> Any:
        return self._keep(_ProxyObservableGauge(name, callbacks, unit=unit, description=description))

    def create_observable_up_down_counter(
        self, name: str, callbacks: Any = None, unit: str = "", description: str = ""
    ) -> Any:
        return self._keep(_ProxyObservableUpDownCounter(name, callbacks, unit=unit, description=description))


class SwappableMeterProvider(MeterProvider):
    """Hands out meters whose instruments delegate to the current SDK meter provider's instruments."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delegate: MeterProvider = NoOpMeterProvider()
        self._meters: list[_SwappableMeter] = []

    @property
    def delegate(self) -> MeterProvider:
        return self._delegate

    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> Meter:
        meter = _SwappableMeter(name, version=version, schema_url=schema_url)
        with self._lock:
            self._meters.append(meter)
            meter.on_set_meter_provider(self._delegate)
        return meter

    def swap(self, delegate: MeterProvider) -> MeterProvider:
        with self._lock:
            old, self._delegate = self._delegate, delegate
            for meter in self._meters:
                meter.on_set_meter_provider(delegate)
        return old
