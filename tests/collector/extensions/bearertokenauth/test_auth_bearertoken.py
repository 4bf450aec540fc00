"""bearertokenauth guarding the otlp receiver over gRPC and HTTP, with the official exporters as clients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GRPCSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.components import Registry
from collector.config.loader import parse_config
from collector.confmap import ConfigError
from collector.service import StartError
from tests.collector.conftest import MakeConfig, RunCollector

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
AUTH = {"authenticator": "bearertokenauth"}


def _spans() -> list[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("guarded"):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def _config(make_config: MakeConfig, auth_ext: dict[str, Any]) -> dict[str, Any]:
    receiver = {
        "protocols": {
            "grpc": {"endpoint": "127.0.0.1:0", "auth": AUTH},
            "http": {"endpoint": "127.0.0.1:0", "auth": AUTH},
        }
    }
    return make_config(
        receiver=receiver,
        extensions={"bearertokenauth": auth_ext},
        service_extensions=["bearertokenauth"],
    )


@pytest.mark.parametrize("source", ["token", "filename"])
def test_right_token_passes_wrong_token_is_401(
    run_collector: RunCollector, make_config: MakeConfig, tmp_path: Path, source: str
) -> None:
    if source == "token":
        ext = {"token": "s3cret"}
    else:
        (tmp_path / "token").write_text("s3cret\n")
        ext = {"filename": str(tmp_path / "token")}
    collector = run_collector(_config(make_config, ext))

    good_grpc = GRPCSpanExporter(
        endpoint=collector.grpc_endpoint, insecure=True, headers={"authorization": "Bearer s3cret"}
    )
    good_http = HTTPSpanExporter(endpoint=f"{collector.http_url}/v1/traces", headers={"Authorization": "Bearer s3cret"})
    try:
        assert good_grpc.export(_spans()) is SpanExportResult.SUCCESS
        assert good_http.export(_spans()) is SpanExportResult.SUCCESS
    finally:
        good_grpc.shutdown()
        good_http.shutdown()
    assert len(collector.exporter().wait_items(2)) == 2

    body = ExportTraceServiceRequest().SerializeToString()
    with httpx.Client(base_url=collector.http_url) as client:
        headers = {"Content-Type": "application/x-protobuf"}
        assert client.post("/v1/traces", content=body, headers=headers).status_code == 401
        wrong = {**headers, "Authorization": "Bearer s3cres"}
        response = client.post("/v1/traces", content=body, headers=wrong)
        assert response.status_code == 401
        # auth schemes are case-insensitive (RFC 9110): a lowercase scheme with the right token passes
        lower = {**headers, "Authorization": "bearer s3cret"}
        assert client.post("/v1/traces", content=body, headers=lower).status_code == 200
        assert (
            client.post("/v1/traces", content=body, headers={**headers, "Authorization": "Basic s3cret"}).status_code
            == 401
        )
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        export = channel.unary_unary(EXPORT)
        for metadata in ((), (("authorization", "Bearer nope"),), (("authorization", "s3cret"),)):
            with pytest.raises(grpc.RpcError) as info:
                export(body, metadata=metadata, timeout=10)
            assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
        export(body, metadata=(("authorization", "BEARER s3cret"),), timeout=10)
    assert collector.exporter().items() == 2


def test_token_config_is_validated(make_config: MakeConfig, test_components: Registry) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_config(make_config, {}), test_components, include_builtin=False)
    assert "extensions.bearertokenauth: one of token, tokens or filename is required" in info.value.errors


def test_authenticator_not_enabled_fails_start_naming_it(run_collector: RunCollector, make_config: MakeConfig) -> None:
    config = _config(make_config, {"token": "x"})
    config["service"]["extensions"] = []
    with pytest.raises(StartError, match=r"receiver 'otlp'.*'bearertokenauth' is not enabled in service.extensions"):
        run_collector(config)
