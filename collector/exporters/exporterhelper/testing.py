"""Helpers for tests of exporters: a minimal Host and deterministic OTLP trace requests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.component import ComponentID, Extension

__all__ = ["StaticHost", "span_names", "trace_request"]


class StaticHost:
    """A Host holding already-started extensions."""

    def __init__(self, extensions: Mapping[ComponentID, Extension] | None = None) -> None:
        self.extensions = dict(extensions or {})

    def get_extension(self, id: ComponentID) -> Extension:
        return self.extensions[id]

    def component_status(self) -> Mapping[str, Mapping[str, Any]]:
        return {}

    @property
    def up_since(self) -> float | None:
        return None


def trace_request(*names: str, service: str = "svc") -> ExportTraceServiceRequest:
    """One resource, one scope, a span per name with ids derived from the name (stable across runs)."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    attr = rs.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", service
    ss = rs.scope_spans.add()
    ss.scope.name = "test"
    for name in names:
        span = ss.spans.add()
        span.name = name
        digest = name.encode().ljust(16, b"\0")[:16]
        span.trace_id = digest
        span.span_id = digest[:8]
    return req


def span_names(request: Any) -> list[str]:
    return [span.name for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
