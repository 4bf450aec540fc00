"""The OTLP/HTTP exporter: POSTs the request message (protobuf or OTLP JSON) with httpx."""

from __future__ import annotations

import email.utils
import gzip
import time
from typing import Any

import httpx
from google.rpc import status_pb2

from collector.component import CreateSettings, DataError, Host, Request, RetryableError, Signal
from collector.exporters.exporterhelper import QueuedExporter, sender_options
from collector.exporters.otlp import log_partial_success
from processors.pdata import SIGNALS, from_json, to_json

from .config import OTLPHTTPExporterConfig

__all__ = ["OTLPHTTPExporter", "parse_retry_after"]

# OTLP/HTTP: these are transient; every other 4xx/5xx is permanent.
_RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OTLPHTTPExporter(QueuedExporter):
    def __init__(self, settings: CreateSettings, config: OTLPHTTPExporterConfig) -> None:
        super().__init__(settings, **sender_options(config), send=self._export)
        self.config = config
        base = config.endpoint.rstrip("/")
        self.urls = {
            Signal.TRACES: config.traces_endpoint or base + SIGNALS[Signal.TRACES].url_path,
            Signal.METRICS: config.metrics_endpoint or base + SIGNALS[Signal.METRICS].url_path,
            Signal.LOGS: config.logs_endpoint or base + SIGNALS[Signal.LOGS].url_path,
        }
        self._json = config.encoding == "json"
        self._gzip = config.compression == "gzip"
        self._client: httpx.AsyncClient | None = None
        self.rejected_items = 0

    async def start(self, host: Host) -> None:
        tls = self.config.tls
        verify: Any = True
        if tls.insecure_skip_verify:
            verify = False
        elif tls.ca_file:
            import ssl

            verify = ssl.create_default_context(cafile=tls.ca_file)
        cert = (tls.cert_file, tls.key_file) if tls.cert_file else None
        headers = {
            **self.config.headers,
            "Content-Type": "application/json" if self._json else "application/x-protobuf",
        }
        if self._gzip:
            headers["Content-Encoding"] = "gzip"
        if cert is not None and verify is not False:
            import ssl

            ctx = verify if isinstance(verify, ssl.SSLContext) else ssl.create_default_context()
            ctx.load_cert_chain(*cert)
            verify = ctx
        self._client = await self.closing(
            httpx.AsyncClient(headers=headers, verify=verify, timeout=self.timeout or None)
        )
        await super().start(host)

    async def _export(self, signal: Signal, request: Request) -> None:
        assert self._client is not None
        body = to_json(request) if self._json else request.SerializeToString()
        if self._gzip:
            body = gzip.compress(body, compresslevel=6)
        url = self.urls[signal]
        try:
            response = await self._client.post(url, content=body)
        except httpx.TimeoutException as exc:
            raise RetryableError(f"{url}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise RetryableError(f"{url}: {type(exc).__name__}: {exc}") from None
        if 200 <= response.status_code < 300:
            self._partial_success(signal, response)
            return
        message = f"{url}: HTTP {response.status_code} {self._status_message(response)}".rstrip()
        if response.status_code in _RETRYABLE_STATUS:
            raise RetryableError(message, retry_after=parse_retry_after(response.headers.get("Retry-After")))
        raise DataError(message)

    def _status_message(self, response: httpx.Response) -> str:
        """The google.rpc.Status message OTLP servers put in error bodies, else the start of the body."""
        content = response.content
        if not content:
            return ""
        status = status_pb2.Status()
        try:
            if "json" in response.headers.get("content-type", ""):
                from_json(content, status)
            else:
                status.ParseFromString(content)
            if status.message:
                return str(status.message)
        except Exception:
            pass
        return content[:200].decode("utf-8", "replace")

    def _partial_success(self, signal: Signal, response: httpx.Response) -> None:
        if not response.content:
            return
        message = SIGNALS[signal].response_type()
        try:
            if "json" in response.headers.get("content-type", ""):
                from_json(response.content, message)
            else:
                message.ParseFromString(response.content)
        except Exception:
            return  # a success whose body we cannot read is still a success
        self.rejected_items += log_partial_success(self.settings.logger, str(self.settings.id), signal, message)
