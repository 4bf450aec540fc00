"""The ``cost`` collector processor: ``cost.usd`` on GenAI spans from any language.

A span from any service carrying ``gen_ai.request.model``/``gen_ai.response.model`` and
``gen_ai.usage.*`` token counts but no ``cost.usd`` leaves this processor with the same ``cost.usd``
the Python SDK face sets: both call ``processors.cost.pricing.price_call``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from processors._attributes import any_value_to_python
from processors.cost.dedup import DUPLICATE_OF_KEY, RESPONSE_ID_KEY, CallRegistry
from processors.cost.pricing import (
    COST_KEY,
    READ_KEYS,
    REQUEST_MODEL_KEY,
    RESPONSE_MODEL_KEY,
    Counts,
    PriceTable,
    price_call,
)
from processors.pdata import item_count, items_containing
from processors.pipeline import (
    Consumer,
    CreateSettings,
    ProcessorFactory,
    Request,
    Signal,
    SyncProcessor,
    changing,
    serialized,
)

__all__ = ["CostConfig", "factories"]

DEFAULT_PRICING_FILE: str | None = None

_MODEL_KEYS_BYTES = (REQUEST_MODEL_KEY.encode(), RESPONSE_MODEL_KEY.encode())
# resource_spans, scope_spans, spans
_SPANS_PATH = (
    ExportTraceServiceRequest.DESCRIPTOR.fields_by_name["resource_spans"].number,
    ResourceSpans.DESCRIPTOR.fields_by_name["scope_spans"].number,
    ScopeSpans.DESCRIPTOR.fields_by_name["spans"].number,
)
# The span-selecting pre-check is used while under this share of a request's spans have a model key.
_PRECHECK_BELOW = 0.5


@dataclass
class CostConfig:
    # A JSON or YAML price file overriding the bundled table per model (OTEL_METRICS_PRICING when unset).
    pricing_file: str | None = DEFAULT_PRICING_FILE
    # model -> {input, output, cache_read, cache_write, cache_write_1h, reasoning, request} (USD per million
    # tokens, request per call; a rate may be {base, tiers: [[start_tokens, rate]]}); wins over pricing_file.
    overrides: dict[str, dict[str, float | str]] = field(default_factory=dict)

    def build_table(self) -> PriceTable:
        table = PriceTable.from_source(self.pricing_file)
        if self.overrides:
            table = table.with_overrides(self.overrides)
        return table

    def validate(self) -> list[str]:
        errors: list[str] = []
        if self.pricing_file is not None:
            try:
                PriceTable.bundled().with_overrides(self.pricing_file)
            except ValueError as exc:
                errors.append(f"pricing_file: {exc}")
        if self.overrides:
            try:
                PriceTable({}).with_overrides(self.overrides)
            except ValueError as exc:
                errors.append(f"overrides: {str(exc).removeprefix('pricing overrides: ')}")
        return errors


def _mark_duplicate(span: Span, holder: bytes) -> None:
    """``span`` reports a call another span holds the cost of (processors.cost.dedup): no cost, a pointer."""
    attributes = span.attributes
    for i in reversed(range(len(attributes))):
        if attributes[i].key in (COST_KEY, DUPLICATE_OF_KEY):
            del attributes[i]
    attributes.add(key=DUPLICATE_OF_KEY).value.string_value = holder[16:].hex()


class _CostProcessor(SyncProcessor):
    reports_changes = True

    def __init__(self, settings: CreateSettings, config: CostConfig, next_consumer: Consumer) -> None:
        super().__init__(settings, next_consumer)
        self._table = config.build_table()
        self._precheck = True
        self._attrs = {"processor": str(settings.id)}
        self._calls = CallRegistry()
        # A span with tokens whose model has no price: counted with its tokens, so a cost total is never silently
        # short (the sink lists them too: otel-metrics prices --unpriced).
        self._unpriced = settings.meter.create_counter(
            "otelcol_processor_cost_unpriced_spans", unit="{span}", description="LLM spans whose model has no price"
        )
        self._unpriced_tokens = settings.meter.create_counter(
            "otelcol_processor_cost_unpriced_tokens", unit="{token}", description="Tokens of unpriced LLM spans"
        )

    def _apply(self, request: ExportTraceServiceRequest) -> None:
        # Only spans whose encoding holds a model key can be priced (processors.pdata.items_containing): the
        # others' attributes are never read in python. The bytes searched are the received ones while no processor
        # changed the request (processors.pipeline.serialized). When most spans of the last request were GenAI
        # spans the pre-check would select nearly all of them, so the next request goes without it.
        candidates = items_containing(serialized(request), _SPANS_PATH, _MODEL_KEYS_BYTES) if self._precheck else None
        with_model = 0
        if candidates is None:
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    with_model += self._price(request, ss.spans, ss.scope.name or None)
        else:
            for (r, s), picked in candidates.items():
                ss = request.resource_spans[r].scope_spans[s]
                spans = ss.spans
                with_model += self._price(request, [spans[i] for i in picked], ss.scope.name or None)
        self._precheck = with_model < item_count(Signal.TRACES, request) * _PRECHECK_BELOW

    def _price(self, request: ExportTraceServiceRequest, spans: Iterable[Span], scope: str | None) -> int:
        """Price ``spans`` of one scope in place; the number of them with a model."""
        table = self._table
        with_model = 0
        for span in spans:
            attrs: dict[str, object] = {}
            for kv in span.attributes[:]:  # a slice: one C call makes every element (iterating: one call each)
                key = kv.key
                if key in READ_KEYS:
                    attrs[key] = any_value_to_python(kv.value)
            if not (REQUEST_MODEL_KEY in attrs or RESPONSE_MODEL_KEY in attrs):
                continue
            with_model += 1
            call = price_call(attrs, table, start_ns=span.start_time_unix_nano, scope=scope)
            if call is None:
                continue
            holder = self._calls.holder(
                attrs.get(RESPONSE_ID_KEY),
                span.trace_id + span.span_id,
                span.parent_span_id,
                call.cost is not None or COST_KEY in attrs,
                call.fingerprint,
            )
            if holder is not None:
                changing(request)
                _mark_duplicate(span, holder)
            elif call.cost is not None:
                changing(request)
                span.attributes.add(key=COST_KEY).value.double_value = call.cost
            elif call.unpriced:
                self._count_unpriced(call.counts)
        return with_model

    def _count_unpriced(self, counts: Counts | None) -> None:
        if counts is None:
            return
        self._unpriced.add(1, self._attrs)
        self._unpriced_tokens.add(counts[0], {**self._attrs, "gen_ai.token.type": "input"})
        self._unpriced_tokens.add(counts[1], {**self._attrs, "gen_ai.token.type": "output"})

    def process(self, signal: Signal, request: Request) -> bool:
        if isinstance(request, ExportTraceServiceRequest):
            self._apply(request)
        return True


factories: tuple[ProcessorFactory[CostConfig], ...] = (
    ProcessorFactory(type="cost", config_type=CostConfig, create=_CostProcessor, signals=frozenset({Signal.TRACES})),
)
