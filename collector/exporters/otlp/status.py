"""gRPC status -> RetryableError / DataError, as the OTLP spec's exporter rules say.

Retryable: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS, and RESOURCE_EXHAUSTED only
when the server attached RetryInfo (it promises recovery). Everything else is permanent: the request is dropped.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from collector.component import DataError, RetryableError

__all__ = ["RETRYABLE_CODES", "classify"]

RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def _retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The server's RetryInfo.retry_delay from grpc-status-details-bin, if any."""
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except Exception:
            return None
        for detail in status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


def classify(error: grpc.aio.AioRpcError, endpoint: str) -> Exception:
    code = error.code()
    message = f"{endpoint}: {code.name} {error.details() or ''}".rstrip()
    delay = _retry_delay(error)
    if code in RETRYABLE_CODES:
        return RetryableError(message, retry_after=delay)
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None:
        return RetryableError(message, retry_after=delay)
    return DataError(message)
