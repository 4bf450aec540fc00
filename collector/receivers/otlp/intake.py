"""What both transports do with a parsed request: check ids, hand it downstream, count, build the response.

The response is sent only after ``await consumer.consume(...)`` returned, so with persistent queues
downstream an acknowledgement means the data is on disk (ARCHITECTURE decision 3).

Partial success (OTLP spec): spans and log records whose ids have the wrong length are removed and reported
as rejected in ``partial_success``; a downstream ``DataError`` carrying an int ``rejected_items`` attribute
smaller than the request's item count is reported the same way (the rest was accepted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from processors.pipeline import Consumer, CreateSettings, DataError, Request, Signal, item_count, received_as

__all__ = ["Intake", "Response", "new_response"]

Response = ExportTraceServiceResponse | ExportMetricsServiceResponse | ExportLogsServiceResponse

_RESPONSES: dict[Signal, type[Response]] = {
    Signal.TRACES: ExportTraceServiceResponse,
    Signal.METRICS: ExportMetricsServiceResponse,
    Signal.LOGS: ExportLogsServiceResponse,
}
_REJECTED_FIELD = {
    Signal.TRACES: "rejected_spans",
    Signal.METRICS: "rejected_data_points",
    Signal.LOGS: "rejected_log_records",
}


def new_response(signal: Signal, rejected: int = 0, message: str = "") -> Response:
    response = _RESPONSES[signal]()
    if rejected or message:
        setattr(response.partial_success, _REJECTED_FIELD[signal], rejected)
        response.partial_success.error_message = message
    return response


def _drop_bad_ids(signal: Signal, request: Request) -> tuple[int, str]:
    """Remove spans/log records with ids of the wrong length; return (removed, first reason)."""
    removed, reason = 0, ""
    if isinstance(request, ExportTraceServiceRequest):
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                bad = [
                    s
                    for s in ss.spans
                    if len(s.trace_id) != 16 or len(s.span_id) != 8 or len(s.parent_span_id) not in (0, 8)
                ]
                if bad:
                    reason = reason or (
                        f"span {bad[0].name!r}: trace_id must be 16 bytes and span_id 8 bytes "
                        f"(got {len(bad[0].trace_id)} and {len(bad[0].span_id)})"
                    )
                    keep = [s for s in ss.spans if s not in bad]
                    del ss.spans[:]
                    ss.spans.extend(keep)
                    removed += len(bad)
    elif isinstance(request, ExportLogsServiceRequest):
        for rl in request.resource_logs:
            for sl in rl.scope_logs:
                bad = [r for r in sl.log_records if len(r.trace_id) not in (0, 16) or len(r.span_id) not in (0, 8)]
                if bad:
                    reason = reason or "log record: trace_id must be empty or 16 bytes, span_id empty or 8 bytes"
                    keep = [r for r in sl.log_records if r not in bad]
                    del sl.log_records[:]
                    sl.log_records.extend(keep)
                    removed += len(bad)
    return removed, reason


@dataclass
class Outcome:
    response: Response
    accepted: int
    rejected: int


class Intake:
    """One per receiver; ``transport`` ("grpc"/"http") is a metric attribute, as in the Collector's."""

    def __init__(self, settings: CreateSettings, consumers: Mapping[Signal, Consumer]) -> None:
        self.settings = settings
        self.consumers = dict(consumers)
        meter = settings.meter
        self._accepted = {
            s: meter.create_counter(
                f"otelcol_receiver_accepted_{s.item_name}",
                unit=f"{{{s.item_name}}}",
                description=f"Number of {s.item_name} successfully pushed into the pipeline.",
            )
            for s in Signal
        }
        self._refused = {
            s: meter.create_counter(
                f"otelcol_receiver_refused_{s.item_name}",
                unit=f"{{{s.item_name}}}",
                description=f"Number of {s.item_name} that could not be pushed into the pipeline.",
            )
            for s in Signal
        }

    def serves(self, signal: Signal) -> bool:
        return signal in self.consumers

    async def export(self, signal: Signal, request: Request, transport: str, wire: bytes | None = None) -> Response:
        """Consume ``request``; return the OTLP response, or raise DataError/RefusedError/other for the caller
        to map onto its transport's codes. ``wire``: the protobuf bytes ``request`` was parsed from, if any."""
        attrs = {"receiver": str(self.settings.id), "transport": transport}
        total = item_count(signal, request)
        if total == 0:
            return new_response(signal)
        rejected, reason = _drop_bad_ids(signal, request)
        if rejected:
            self._refused[signal].add(rejected, attrs)
            if rejected == total:
                raise DataError(f"all {total} items rejected: {reason}")
        try:
            with received_as(request, None if rejected else wire):
                await self.consumers[signal].consume(signal, request)
        except DataError as exc:
            partial = getattr(exc, "rejected_items", None)
            valid = total - rejected
            if isinstance(partial, int) and 0 < partial < valid:
                self._refused[signal].add(partial, attrs)
                self._accepted[signal].add(valid - partial, attrs)
                message = "; ".join(m for m in (reason, str(exc)) if m)
                return new_response(signal, rejected + partial, message)
            self._refused[signal].add(valid, attrs)
            raise
        except BaseException:
            self._refused[signal].add(total - rejected, attrs)
            raise
        self._accepted[signal].add(total - rejected, attrs)
        return new_response(signal, rejected, reason) if rejected else new_response(signal)


REQUEST_TYPES: dict[Signal, type[Request]] = {
    Signal.TRACES: ExportTraceServiceRequest,
    Signal.METRICS: ExportMetricsServiceRequest,
    Signal.LOGS: ExportLogsServiceRequest,
}
