"""The otlp receiver over TLS (gRPC and HTTP), with the official exporters trusting a self-signed certificate."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GRPCSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.components import Registry
from tests.collector.conftest import MakeConfig, RunCollector


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def _spans() -> list[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("secure"):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_tls_on_both_protocols(
    run_collector: RunCollector,
    make_config: MakeConfig,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # requests lets these variables override the exporter's certificate_file (its session.verify).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    cert, key = certificate
    tls = {"cert_file": str(cert), "key_file": str(key)}
    receiver = {
        "protocols": {
            "grpc": {"endpoint": "127.0.0.1:0", "tls": tls},
            "http": {"endpoint": "127.0.0.1:0", "tls": tls},
        }
    }
    collector = run_collector(make_config(receiver=receiver))
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    grpc_exporter = GRPCSpanExporter(endpoint=f"localhost:{collector.receiver.grpc_port}", credentials=credentials)
    http_exporter = HTTPSpanExporter(
        endpoint=f"https://127.0.0.1:{collector.receiver.http_port}/v1/traces", certificate_file=str(cert)
    )
    try:
        assert grpc_exporter.export(_spans()) is SpanExportResult.SUCCESS
        assert http_exporter.export(_spans()) is SpanExportResult.SUCCESS
    finally:
        grpc_exporter.shutdown()
        http_exporter.shutdown()
    assert len(collector.exporter().wait_items(2)) == 2
    # plaintext HTTP to the TLS port is not served
    with pytest.raises(httpx.HTTPError):
        httpx.post(f"http://127.0.0.1:{collector.receiver.http_port}/v1/traces", content=b"", timeout=5)


def test_tls_needs_cert_and_key(make_config: MakeConfig, test_components: Registry) -> None:
    from collector.config.loader import parse_config
    from collector.confmap import ConfigError

    receiver = {"protocols": {"http": {"endpoint": "127.0.0.1:0", "tls": {"cert_file": "/x.pem"}}}}
    with pytest.raises(ConfigError) as info:
        parse_config(make_config(receiver=receiver), test_components, include_builtin=False)
    assert info.value.errors == ["receivers.otlp: protocols.http.tls: cert_file and key_file must be set together"]
