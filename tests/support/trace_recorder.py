"""A real OTLP/gRPC trace service standing in for Tempo or Jaeger: it keeps every request it is sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class TraceRecorder(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self._requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._lock = threading.Lock()

    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest, context: object) -> object:
        with self._lock:
            self._requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def requests(self) -> list[trace_service_pb2.ExportTraceServiceRequest]:
        """What arrived so far, in order."""
        with self._lock:
            return list(self._requests)

    def span_ids(self) -> set[tuple[bytes, bytes]]:
        """(trace id, span id) of every span received so far."""
        return {
            (span.trace_id, span.span_id)
            for request in self.requests()
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        }


@contextmanager
def recording_trace_service() -> Iterator[tuple[TraceRecorder, int]]:
    """A TraceRecorder served on a free loopback port: (recorder, port)."""
    recorder = TraceRecorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(recorder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield recorder, port
    finally:
        server.stop(grace=None)
