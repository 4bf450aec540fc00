"""The OTLP/gRPC exporter: forwards request messages unchanged through opentelemetry-proto's stubs."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc import MetricsServiceStub
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

from collector.component import CreateSettings, Host, Request, Signal
from collector.exporters.exporterhelper import QueuedExporter, sender_options
from processors.pdata import rejected_items

from .config import OTLPExporterConfig
from .status import classify

__all__ = ["OTLPExporter", "log_partial_success", "parse_endpoint"]

_COMPRESSION = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}
# Forwarded requests can be large batches; gRPC's 4 MiB default receive limit is for servers, not for us.
_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


def parse_endpoint(endpoint: str, insecure: bool) -> tuple[str, bool]:
    """(gRPC target, use TLS) from ``host:port`` or ``http(s)://host:port``."""
    if endpoint.startswith("http://"):
        return endpoint[len("http://") :].rstrip("/"), False
    if endpoint.startswith("https://"):
        return endpoint[len("https://") :].rstrip("/"), True
    return endpoint, not insecure


def log_partial_success(logger: logging.Logger, exporter: str, signal: Signal, response: Any) -> int:
    """Log an OTLP partial success; return how many items the peer rejected."""
    rejected, message = rejected_items(signal, response)
    if rejected or message:
        logger.warning(
            "exporter %s: partial success: %d %s rejected: %s", exporter, rejected, signal.item_name, message
        )
    return rejected


class OTLPExporter(QueuedExporter):
    def __init__(self, settings: CreateSettings, config: OTLPExporterConfig) -> None:
        super().__init__(settings, **sender_options(config), send=self._export)
        self.config = config
        self.target, self.use_tls = parse_endpoint(config.endpoint, config.tls.insecure)
        self._metadata = tuple((k.lower(), v) for k, v in config.headers.items())
        self._stubs: dict[Signal, Any] = {}
        self.rejected_items = 0  # from partial-success responses

    async def start(self, host: Host) -> None:
        compression = _COMPRESSION.get(self.config.compression)
        options = list(_CHANNEL_OPTIONS)
        if self.config.tls.server_name_override:
            options.append(("grpc.ssl_target_name_override", self.config.tls.server_name_override))
        if self.use_tls:
            ca, key, cert = self.config.tls.read()
            creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
            channel = grpc.aio.secure_channel(self.target, creds, options=options, compression=compression)
        else:
            channel = grpc.aio.insecure_channel(self.target, options=options, compression=compression)
        await self.closing(channel)
        self._stubs = {
            Signal.TRACES: TraceServiceStub(channel),
            Signal.METRICS: MetricsServiceStub(channel),
            Signal.LOGS: LogsServiceStub(channel),
        }
        await super().start(host)

    async def _export(self, signal: Signal, request: Request) -> None:
        stub = self._stubs[signal]
        try:
            response = await stub.Export(request, metadata=self._metadata, timeout=self.timeout or None)
        except grpc.aio.AioRpcError as exc:
            raise classify(exc, self.target) from None
        self.rejected_items += log_partial_success(self.settings.logger, str(self.settings.id), signal, response)
