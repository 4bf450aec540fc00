"""``opentelemetry-instrument`` support: an app that never imports otel_metrics still gets our processors.

Entry points (pyproject): ``opentelemetry_distro`` → ``OtelMetricsDistro`` (OTLP exporters by default, as the
upstream distro does) and ``opentelemetry_configurator`` → ``OtelMetricsConfigurator`` (the SDK's own
configurator, with the correlation and business processors first and every exporter's
BatchSpanProcessor wrapped
in the enriching processor: cost and redaction). All standard ``OTEL_*`` variables apply. If the upstream
``opentelemetry-distro`` is installed too, select ours with ``OTEL_PYTHON_DISTRO=otel_metrics`` and
``OTEL_PYTHON_CONFIGURATOR=otel_metrics``. ``OTEL_METRICS_REDACT=false`` turns redaction off. On SIGTERM with no
handler of the app's own, telemetry is flushed before the process exits on the signal (``flush_on_sigterm``).
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.environment_variables import (
    OTEL_LOGS_EXPORTER,
    OTEL_METRICS_EXPORTER,
    OTEL_TRACES_EXPORTER,
)
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.environment_variables import OTEL_EXPORTER_OTLP_PROTOCOL
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_metrics._internal.config import flush_on_sigterm
from otel_metrics._internal.fast_processors import ContextAttributesSpanProcessor
from otel_metrics._internal.safety import internal_error
from otel_metrics._internal.state import price_table_for
from processors.sdk import EnrichingSpanProcessor

__all__ = ["REDACT_ENV_VAR", "OtelMetricsConfigurator", "OtelMetricsDistro"]

REDACT_ENV_VAR = "OTEL_METRICS_REDACT"


def _redact() -> bool:
    return os.environ.get(REDACT_ENV_VAR, "true").strip().lower() not in ("false", "0", "no", "off")


class OtelMetricsDistro(BaseDistro):  # type: ignore[misc]
    """Defaults as the upstream distro: OTLP for traces and metrics over gRPC (logs stay opt-in)."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault(OTEL_TRACES_EXPORTER, "otlp")
        os.environ.setdefault(OTEL_METRICS_EXPORTER, "otlp")
        os.environ.setdefault(OTEL_LOGS_EXPORTER, "none")
        os.environ.setdefault(OTEL_EXPORTER_OTLP_PROTOCOL, "grpc")


class OtelMetricsConfigurator(_OTelSDKConfigurator):
    """The SDK configurator plus our span processors (correlation, business, cost, redaction)."""

    def _configure(self, **kwargs: Any) -> None:
        try:
            table = price_table_for(None)
            redact = _redact()

            def export_span_processor(exporter: SpanExporter, *args: Any, **kw: Any) -> SpanProcessor:
                return EnrichingSpanProcessor(BatchSpanProcessor(exporter), price_table=table, redact=redact)

            # Both the correlation and the business processor, in one cached instance (fast_processors).
            ours: list[SpanProcessor] = [ContextAttributesSpanProcessor()]
            kwargs["span_processors"] = ours + list(kwargs.get("span_processors") or [])
            kwargs.setdefault("export_span_processor", export_span_processor)
        except Exception:
            internal_error("OtelMetricsConfigurator")
        super()._configure(**kwargs)  # type: ignore[no-untyped-call]
        flush_on_sigterm()
