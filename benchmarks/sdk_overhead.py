"""Per-call cost of @track_performance (all otel_metrics processors + its metrics) against a bare
``tracer.start_as_current_span`` with a BatchSpanProcessor, measured in the same run.

Both export to discarding exporters, so only in-process work is measured. The target is a ratio <= 1.25.

    python benchmarks/sdk_overhead.py [--calls 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

TARGET_RATIO = 1.25


class DiscardSpans(SpanExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


class DiscardMetrics(MetricExporter):
    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def work() -> int:
    return 1


def time_per_call(fn: Callable[[], Any], calls: int, flush: Callable[[], Any]) -> float:
    """CPU time of the whole process per call, every thread included, with ``flush`` (the provider's
    force_flush) inside the window: work the batch processor moves to its export thread (our enrichment on the
    export path) counts as the code's cost. CPU time, not wall time: on a shared machine, time spent
    descheduled is not the code's cost."""
    flush()
    gc.collect()
    started = time.process_time_ns()
    for _ in range(calls):
        fn()
    flush()
    return (time.process_time_ns() - started) / calls


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=31)
    args = parser.parse_args(argv)

    # Baseline: the SDK as documented, its own provider (not the global one).
    baseline_exporter = DiscardSpans()
    baseline_provider = TracerProvider(shutdown_on_exit=False)
    baseline_provider.add_span_processor(BatchSpanProcessor(baseline_exporter))
    tracer = baseline_provider.get_tracer("benchmark")

    def bare() -> int:
        with tracer.start_as_current_span("svc.work"):
            return work()

    # Breakdown only (not the target): the bare span given the attributes a decorated span carries, through
    # the SDK's public API. Shows what those attributes alone cost in the SDK (its per-value checks).
    # Its own provider, so the baseline's batch queue and exporter see exactly the baseline's spans.
    our_attributes = {"tenant.id": "acme", "correlation.id": "bench-request-1", "operation.outcome": "success"}
    reference_provider = TracerProvider(shutdown_on_exit=False)
    reference_provider.add_span_processor(BatchSpanProcessor(DiscardSpans()))
    reference_tracer = reference_provider.get_tracer("benchmark")

    def bare_with_attributes() -> int:
        with reference_tracer.start_as_current_span("svc.work", attributes=our_attributes):
            return work()

    # Ours: configure() with every processor (correlation, business, enrichment/cost/redaction) and metrics.
    import otel_metrics
    from otel_metrics import business_context, correlation_scope, track_performance

    ours_exporter = DiscardSpans()
    telemetry = otel_metrics.configure(
        "benchmark",
        _span_exporters=[ours_exporter],
        _metric_exporters=[DiscardMetrics()],
        metric_dimensions=("tenant.id",),
    )

    if telemetry.disabled:
        print("configure() failed (see the log above); nothing to measure")
        return 1

    @track_performance("svc")
    def tracked() -> int:
        return work()

    # Breakdown: three nested calls (each span's parent context is a new object, so caches keyed by the context
    # object would miss on every span), against three nested bare spans.
    @track_performance("svc")
    def tracked_leaf() -> int:
        return work()

    @track_performance("svc")
    def tracked_middle() -> int:
        return tracked_leaf()

    @track_performance("svc")
    def tracked_nested() -> int:
        return tracked_middle()

    def bare_nested() -> int:
        with (
            tracer.start_as_current_span("svc.a"),
            tracer.start_as_current_span("svc.b"),
            tracer.start_as_current_span("svc.c"),
        ):
            return work()

    # Decomposition: a bare span on the configured pipeline (processors, no decorator, no metrics).
    pipeline_tracer = telemetry.tracer_provider.get_tracer("benchmark") if telemetry.tracer_provider else tracer

    def pipeline_span() -> int:
        with pipeline_tracer.start_as_current_span("svc.work"):
            return work()

    bare_ns: list[float] = []
    ours_ns: list[float] = []
    pipeline_ns: list[float] = []
    attributes_ns: list[float] = []
    bare_nested_ns: list[float] = []
    ours_nested_ns: list[float] = []
    # A realistic scope: one request's correlation id and tenant around the calls, for both variants.
    with correlation_scope("bench-request-1"), business_context(tenant_id="acme"):
        flush_bare = baseline_provider.force_flush
        flush_ours = telemetry.force_flush
        flush_reference = reference_provider.force_flush
        variants = (
            (bare, flush_bare),
            (tracked, flush_ours),
            (pipeline_span, flush_ours),
            (bare_with_attributes, flush_reference),
            (bare_nested, flush_bare),
            (tracked_nested, flush_ours),
        )
        for fn, flush in variants:  # warm-up
            time_per_call(fn, 2_000, flush)
        for _ in range(args.rounds):  # interleaved, so drift affects all alike
            bare_ns.append(time_per_call(bare, args.calls, flush_bare))
            ours_ns.append(time_per_call(tracked, args.calls, flush_ours))
            pipeline_ns.append(time_per_call(pipeline_span, args.calls, flush_ours))
            attributes_ns.append(time_per_call(bare_with_attributes, args.calls, flush_reference))
            bare_nested_ns.append(time_per_call(bare_nested, args.calls // 3, flush_bare))
            ours_nested_ns.append(time_per_call(tracked_nested, args.calls // 3, flush_ours))
    telemetry.force_flush()
    baseline_provider.force_flush()
    telemetry.shutdown()
    baseline_provider.shutdown()
    reference_provider.shutdown()

    # Process CPU time per call (every thread, flush included), interleaved rounds; the median is the figure,
    # the min is shown for reference.
    for label, pick in (("median", statistics.median), ("min", min)):
        b, o = pick(bare_ns), pick(ours_ns)
        print(f"[{label} of {args.rounds} rounds x {args.calls} calls]")
        print(f"  bare start_as_current_span + BatchSpanProcessor: {b:8.0f} ns/call")
        print(f"  @track_performance, all processors + metrics:    {o:8.0f} ns/call")
        ratio = o / b
        verdict = "OK" if ratio <= TARGET_RATIO else "ABOVE TARGET"
        print(f"  ratio: {ratio:.3f} (target <= {TARGET_RATIO}) {verdict}")
    # Each round's own ratio: both variants ran back to back, so a drift of the machine's speed between rounds
    # cancels out of it.
    paired = sorted(o / b for b, o in zip(bare_ns, ours_ns, strict=True))
    quartiles = statistics.quantiles(paired, n=4)
    print(f"[per-round ratio, {args.rounds} rounds] median {statistics.median(paired):.3f}, ", end="")
    print(f"quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f}, range {paired[0]:.3f}-{paired[-1]:.3f}")
    b, p, o, a = (statistics.median(x) for x in (bare_ns, pipeline_ns, ours_ns, attributes_ns))
    print("[breakdown, medians, each against the bare span]")
    print(f"  bare span + our 3 attributes via the SDK's API:    {a:8.0f} ns/call, ratio {a / b:.3f}")
    print(f"  with-block span on our pipeline (processors only): {p:8.0f} ns/call, ratio {p / b:.3f}")
    # The decorator starts, attaches and ends its span directly, without start_as_current_span's context
    # manager, so it can cost less than the with-block on the same pipeline despite its metrics.
    print(f"  @track_performance minus that with-block span:     {o - p:8.0f} ns/call")
    bn, on = statistics.median(bare_nested_ns), statistics.median(ours_nested_ns)
    print(f"  3 nested calls: bare {bn:8.0f} ns, @track_performance {on:8.0f} ns, ratio {on / bn:.3f}")
    print(f"spans exported: bare {baseline_exporter.count}, ours {ours_exporter.count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
