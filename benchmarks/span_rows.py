"""CPU per span of ``span_records`` (OTLP spans -> rows for binary COPY), next to a floor measured in the same run.

Data: ``sink_throughput.make_requests`` (agent-service spans: 9 attributes each, 5 of them hot text columns).
Timed as the writer runs it (cyclic GC paused), in CPU time. Floor: a plain loop over the same decoded requests that
reads every span's scalar fields and every attribute's key and value through the protobuf API. Prints best-of-N
µs/span for both and their ratio; the ratio is what code changes move (the floor tracks the machine and the protobuf
build).

    .venv/bin/python benchmarks/span_rows.py [--spans 40000] [--batch 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from sink_throughput import make_requests  # noqa: E402

from collector.exporters.postgres.traces import span_records  # noqa: E402

DEFAULT_SPANS = 40_000
DEFAULT_BATCH = 2_000
DEFAULT_REPEAT = 5


def _floor(request: Any) -> int:
    """Read what span_records must read at least: each span's scalars and each attribute's key and value."""
    read: list[Any] = []
    keep = read.append
    for resource_spans in request.resource_spans:
        for kv in resource_spans.resource.attributes:
            keep((kv.key, kv.value.string_value))
        for scope_spans in resource_spans.scope_spans:
            keep((scope_spans.scope.name, scope_spans.scope.version))
            for span in scope_spans.spans:
                status = span.status
                keep((span.trace_id, span.span_id, span.parent_span_id, span.trace_state, span.name, span.kind))
                keep((span.start_time_unix_nano, span.end_time_unix_nano, status.code, status.message, span.flags))
                keep((span.dropped_attributes_count, span.dropped_events_count, span.dropped_links_count))
                keep((span.events, span.links))
                for kv in span.attributes:
                    value = kv.value
                    keep((kv.key, value.WhichOneof("value"), value.string_value))
        read.clear()
    return sum(len(scope_spans.spans) for rs in request.resource_spans for scope_spans in rs.scope_spans)


def _best_us_per_span(work: Callable[[Any], Any], requests: list[Any], spans: int, repeat: int) -> float:
    """Best CPU time (process time: other processes on the machine do not count) with the cyclic GC paused, as
    the writer runs span_records."""
    best = float("inf")
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.process_time()
            for request in requests:
                work(request)
            best = min(best, time.process_time() - start)
    finally:
        gc.enable()
    return best / spans * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=DEFAULT_SPANS)
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    args = parser.parse_args()

    requests = [ExportTraceServiceRequest.FromString(data) for data in make_requests(args.spans, args.batch)]
    spans = sum(_floor(r) for r in requests)  # also warms up the protobuf wrappers
    assert sum(len(span_records(r)) for r in requests) == spans
    floor = _best_us_per_span(_floor, requests, spans, args.repeat)
    rows = _best_us_per_span(span_records, requests, spans, args.repeat)
    print(f"{spans} spans, best of {args.repeat}")
    print(f"  floor (read every field and attribute): {floor:6.2f} µs/span")
    print(f"  span_records:                           {rows:6.2f} µs/span  ({1e6 / rows:,.0f} spans/s on one core)")
    print(f"  ratio span_records / floor:             {rows / floor:6.2f}")


if __name__ == "__main__":
    main()
