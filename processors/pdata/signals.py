"""The three OTLP signals as one table: message types, item names, partial-success fields, HTTP paths, gRPC services.

Everything that differs between traces, metrics and logs is a row here, so a component written once for every
signal looks its facts up instead of spelling them out (as upstream's pdata and otlpreceiver do for the Collector).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeAlias

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

from processors.pdata.pieces import merge_in_pieces

__all__ = [
    "SIGNALS",
    "Request",
    "Response",
    "Signal",
    "SignalSpec",
    "new_request",
    "new_response",
    "parse_request",
    "rejected_items",
]

Request: TypeAlias = ExportTraceServiceRequest | ExportMetricsServiceRequest | ExportLogsServiceRequest
Response: TypeAlias = ExportTraceServiceResponse | ExportMetricsServiceResponse | ExportLogsServiceResponse


class Signal(str, Enum):
    TRACES = "traces"
    METRICS = "metrics"
    LOGS = "logs"

    @property
    def spec(self) -> SignalSpec:
        return SIGNALS[self]

    @property
    def item_name(self) -> str:
        """The item word the Collector's own metrics use: spans, metric_points, log_records."""
        return SIGNALS[self].item_name


@dataclass(frozen=True)
class SignalSpec:
    """One signal's row. The three ``*_field`` names spell the request's shape: resource entries, then scope entries
    in each, then items in each (for metrics the items are metrics, and each metric holds the data points that are
    counted)."""

    request_type: type[Request]
    response_type: type[Response]
    item_name: str
    rejected_field: str  # the count field of the response's partial_success
    url_path: str  # the OTLP/HTTP default path
    grpc_service: str  # the gRPC service whose ``Export`` method takes the request
    resource_field: str
    scope_field: str
    item_field: str


def _spec(signal: Signal, request_type: type[Request], response_type: type[Response], item_name: str) -> SignalSpec:
    """A signal's row: the field and service names as its protobuf descriptors state them, by field numbers the OTLP
    wire format fixes (request: 1 resource_*; resource_*: 2 scope_*; scope_*: 2 the items; partial_success: 1 the
    rejected count), so no name is written twice."""
    resource = request_type.DESCRIPTOR.fields_by_number[1]
    scope = resource.message_type.fields_by_number[2]
    partial_success = response_type.DESCRIPTOR.fields_by_name["partial_success"].message_type
    (service,) = request_type.DESCRIPTOR.file.services_by_name.values()
    return SignalSpec(
        request_type,
        response_type,
        item_name=item_name,
        rejected_field=partial_success.fields_by_number[1].name,
        url_path=f"/v1/{signal.value}",
        grpc_service=service.full_name,
        resource_field=resource.name,
        scope_field=scope.name,
        item_field=scope.message_type.fields_by_number[2].name,
    )


SIGNALS: dict[Signal, SignalSpec] = {
    Signal.TRACES: _spec(Signal.TRACES, ExportTraceServiceRequest, ExportTraceServiceResponse, "spans"),
    Signal.METRICS: _spec(Signal.METRICS, ExportMetricsServiceRequest, ExportMetricsServiceResponse, "metric_points"),
    Signal.LOGS: _spec(Signal.LOGS, ExportLogsServiceRequest, ExportLogsServiceResponse, "log_records"),
}


def new_request(signal: Signal) -> Request:
    return SIGNALS[signal].request_type()


def parse_request(signal: Signal, data: bytes) -> Request:
    """The ``signal``'s export request decoded from its protobuf bytes (raises protobuf's DecodeError); a large one
    in pieces (``processors.pdata.pieces``), so that other threads run in between."""
    request: Request = SIGNALS[signal].request_type()
    merge_in_pieces(request, data)
    return request


def new_response(signal: Signal, rejected: int = 0, message: str = "") -> Response:
    """The export response; ``partial_success`` is set only when something was rejected or there is a message."""
    response = SIGNALS[signal].response_type()
    if rejected or message:
        setattr(response.partial_success, SIGNALS[signal].rejected_field, rejected)
        response.partial_success.error_message = message
    return response


def rejected_items(signal: Signal, response: Any) -> tuple[int, str]:
    """(items the peer rejected, its message) from an export response's ``partial_success``."""
    if not response.HasField("partial_success"):
        return 0, ""
    ps = response.partial_success
    return int(getattr(ps, SIGNALS[signal].rejected_field)), str(ps.error_message)
