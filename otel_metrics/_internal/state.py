"""Process-wide settings and the cached instruments every helper records on.

Instruments are created once per ``configure()`` (not per call) from the global meter provider, which after
``configure()`` is our swappable provider, so they stay valid across reconfiguration.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api

from otel_metrics._internal.fast_processors import context_business_attributes
from otel_metrics._internal.operation_metrics import OperationAggregator
from otel_metrics._internal.safety import logger
from processors.business import get_business_attributes
from processors.cost import PriceTable, default_price_table

SCOPE_NAME = "otel_metrics"
# Seconds; the OTel semconv advisory boundaries for durations (http.server.request.duration uses the same).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# Tokens: the GenAI semconv advisory boundaries for gen_ai.client.token.usage.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)


@dataclass(frozen=True)
class Settings:
    metric_dimensions: tuple[str, ...] = ()
    redact: bool = True
    pricing: Any = None  # what configure(pricing=...) got: path, mapping or None (bundled + env)


@dataclass
class Instruments:
    duration: Any
    calls: Any
    errors: Any
    token_usage: Any
    cost: Any
    unpriced_calls: Any
    extra: dict[str, Any] = field(default_factory=dict)


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.settings = Settings()
        self.tracer: trace_api.Tracer = trace_api.get_tracer(SCOPE_NAME)
        # Until configure() installs an exporter that carries pre-aggregated durations (operation_metrics),
        # the decorator records operation.duration on the SDK histogram instead.
        self.ops = OperationAggregator(DURATION_BUCKETS)
        self.preaggregated = False
        self._instruments: Instruments | None = None
        self._price_table: PriceTable | None = None

    def reset(
        self, settings: Settings, ops: OperationAggregator | None, tracer: trace_api.Tracer | None = None
    ) -> None:
        with self.lock:
            self.settings = settings
            # configure() hands its SDK provider's tracer: one delegation less per decorated call.
            self.tracer = tracer or trace_api.get_tracer(SCOPE_NAME)
            if ops is not None:
                self.ops = ops
            self.preaggregated = ops is not None
            self._price_table = None

    @property
    def price_table(self) -> PriceTable:
        table = self._price_table
        if table is None:
            with self.lock:
                table = self._price_table = price_table_for(self.settings.pricing)
        return table

    def instruments(self) -> Instruments:
        """Created once per process from the global meter provider; they follow every reconfiguration."""
        inst = self._instruments
        if inst is None:
            with self.lock:
                if self._instruments is not None:
                    return self._instruments
                meter = metrics_api.get_meter(SCOPE_NAME)
                inst = Instruments(
                    duration=meter.create_histogram(
                        "operation.duration",
                        unit="s",
                        description="Duration of operations wrapped by @track_performance.",
                        explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
                    ),
                    calls=meter.create_observable_counter(
                        "operation.calls",
                        callbacks=[lambda options: self.ops.observe_calls(options)],
                        unit="{call}",
                        description="Calls of @track_performance operations.",
                    ),
                    errors=meter.create_observable_counter(
                        "operation.errors",
                        callbacks=[lambda options: self.ops.observe_errors(options)],
                        unit="{error}",
                        description="Failed calls of @track_performance operations by error.type.",
                    ),
                    token_usage=meter.create_histogram(
                        "gen_ai.client.token.usage",
                        unit="{token}",
                        description="Number of input and output tokens used.",
                        explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
                    ),
                    cost=meter.create_counter("cost.usd", unit="{USD}", description="Cost in US dollars."),
                    unpriced_calls=meter.create_counter(
                        "gen_ai.client.unpriced_calls",
                        unit="{call}",
                        description="LLM calls whose model has no price: their tokens are in gen_ai.client.token.usage,"
                        " their cost in no total.",
                    ),
                )
                self._instruments = inst
        return inst

    def meter(self) -> metrics_api.Meter:
        return metrics_api.get_meter(SCOPE_NAME)


def price_table_for(pricing: Any) -> PriceTable:
    """configure(pricing=...) as a table; a bad file or mapping is logged and the bundled table used."""
    if pricing is None:
        return default_price_table()
    try:
        return PriceTable.from_source(pricing)
    except Exception as exc:
        logger.error("otel_metrics: ignoring pricing=%r (%s); using the bundled price table", pricing, exc)
        return default_price_table()


STATE = _State()


def metric_dimensions_from_context() -> dict[str, Any]:
    """The business attributes of the current context that configure(metric_dimensions=...) allows on
    metrics."""
    dims = STATE.settings.metric_dimensions
    if not dims:
        return {}
    attrs = context_business_attributes()
    if not attrs:
        return {}
    return {k: attrs[k] for k in dims if k in attrs}


_dimension_cache_entry: tuple[Any, Any, Any] = (None, None, None)


def metric_dimension_key(parent: Any) -> tuple[tuple[str, Any], ...] | None:
    """The configured metric dimensions of context ``parent`` as a hashable key, cached by context identity
    (contexts are immutable; a request starts many spans from the same one)."""
    global _dimension_cache_entry
    entry = _dimension_cache_entry
    dims = STATE.settings.metric_dimensions
    if entry[0] is parent and entry[1] is dims:
        return entry[2]  # type: ignore[no-any-return]
    attrs = get_business_attributes(parent) if dims else {}
    key = tuple((k, attrs[k]) for k in dims if k in attrs) or None
    _dimension_cache_entry = (parent, dims, key)
    return key
