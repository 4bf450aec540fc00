"""Global providers that can be re-pointed: why a second ``configure()`` does not stack.

The OpenTelemetry API lets a process set its global tracer/meter provider once. ``configure()`` therefore sets
*our* delegating providers once, and every later ``configure()`` builds a fresh SDK provider pipeline,
points the
delegating providers at it and shuts the previous one down (flushing it). Tracers, meters and instruments that
libraries obtained earlier (e.g. FastAPI instrumentation at import time) follow the swap because they are
delegating objects too. The extra cost is one Python call per span start or measurement. Only the public API is
used: the API's own proxy meter and instruments are private and may change in any release, so the meter's
instruments are re-created on each delegate's meter instead (observable ones with their callbacks).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.metrics import (
    CallbackT,
    Counter,
    Histogram,
    Meter,
    MeterProvider,
    NoOpMeter,
    NoOpMeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.metrics import _Gauge as Gauge
from opentelemetry.util.types import Attributes

__all__ = ["SwappableMeterProvider", "SwappableTracerProvider"]

_I = TypeVar("_I", bound="_Swappable")


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


class _Swappable:
    """An instrument re-created on the current delegate meter at every swap; measurements go to that one."""

    def __init__(self, create: Callable[[Meter], Any]) -> None:
        self._create = create
        self._real: Any = None

    def point_at(self, meter: Meter) -> None:
        self._real = self._create(meter)


class _Counter(_Swappable, Counter):
    def add(self, amount: float, attributes: Attributes = None, context: Context | None = None) -> None:
        self._real.add(amount, attributes, context)


class _UpDownCounter(_Swappable, UpDownCounter):
    def add(self, amount: float, attributes: Attributes = None, context: Context | None = None) -> None:
        self._real.add(amount, attributes, context)


class _Histogram(_Swappable, Histogram):
    def record(self, amount: float, attributes: Attributes = None, context: Context | None = None) -> None:
        self._real.record(amount, attributes, context)


class _Gauge(_Swappable, Gauge):
    def set(self, amount: float, attributes: Attributes = None, context: Context | None = None) -> None:
        self._real.set(amount, attributes, context)


# Observable instruments measure through their callbacks, which each delegate meter is given anew.
class _ObservableCounter(_Swappable, ObservableCounter):
    pass


class _ObservableGauge(_Swappable, ObservableGauge):
    pass


class _ObservableUpDownCounter(_Swappable, ObservableUpDownCounter):
    pass


class _SwappableMeter(Meter):
    """A meter whose instruments are re-created on each delegate's meter, so they can be re-pointed any number of
    times. Public API only: the API's own proxy meter is private and not bound by its compatibility promise."""

    def __init__(self, name: str, version: str | None, schema_url: str | None, attributes: Attributes) -> None:
        super().__init__(name, version=version, schema_url=schema_url)
        self._attributes = attributes
        self._lock = threading.Lock()
        self._instruments: list[_Swappable] = []
        self._meter: Meter = NoOpMeter(name)

    def point_at(self, provider: MeterProvider) -> None:
        with self._lock:
            self._meter = provider.get_meter(self.name, self.version, self.schema_url, self._attributes)
            for instrument in self._instruments:
                instrument.point_at(self._meter)

    def _keep(self, instrument: _I) -> _I:
        with self._lock:
            self._instruments.append(instrument)
            instrument.point_at(self._meter)
        return instrument

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Counter:
        return self._keep(_Counter(lambda m: m.create_counter(name, unit, description)))

    def create_up_down_counter(self, name: str, unit: str = "", description: str = "") -> UpDownCounter:
        return self._keep(_UpDownCounter(lambda m: m.create_up_down_counter(name, unit, description)))

    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
    ) -> Histogram:
        return self._keep(
            _Histogram(
                lambda m: m.create_histogram(
                    name, unit, description, explicit_bucket_boundaries_advisory=explicit_bucket_boundaries_advisory
                )
            )
        )

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> Gauge:
        return self._keep(_Gauge(lambda m: m.create_gauge(name, unit, description)))

    def create_observable_counter(
        self, name: str, callbacks: Sequence[CallbackT] | None = None, unit: str = "", description: str = ""
    ) -> ObservableCounter:
        return self._keep(_ObservableCounter(lambda m: m.create_observable_counter(name, callbacks, unit, description)))

    def create_observable_gauge(
        self, name: str, callbacks: Sequence[CallbackT] | None = None, unit: str = "", description: str = ""
    ) -> ObservableGauge:
        return self._keep(_ObservableGauge(lambda m: m.create_observable_gauge(name, callbacks, unit, description)))

    def create_observable_up_down_counter(
        self, name: str, callbacks: Sequence[CallbackT] | None = None, unit: str = "", description: str = ""
    ) -> ObservableUpDownCounter:
        return self._keep(
            _ObservableUpDownCounter(lambda m: m.create_observable_up_down_counter(name, callbacks, unit, description))
        )


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
        meter = _SwappableMeter(name, version, schema_url, attributes)
        with self._lock:
            self._meters.append(meter)
            meter.point_at(self._delegate)
        return meter

    def swap(self, delegate: MeterProvider) -> MeterProvider:
        with self._lock:
            old, self._delegate = self._delegate, delegate
            for meter in self._meters:
                meter.point_at(delegate)
        return old
