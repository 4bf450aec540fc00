"""A plain app that never imports otel_metrics: only the OpenTelemetry API.

Run it under auto-instrumentation and it still gets correlation ids, business metadata, cost and redaction:

    OTEL_SERVICE_NAME=auto-demo OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 \
        opentelemetry-instrument python examples/auto_instrumented/app.py

The "LLM call" below sets GenAI token counts but no cost, as third-party GenAI instrumentations do; the
otel_metrics distro prices it on export (cost.usd) and masks the API key that leaked into an attribute.
"""

from __future__ import annotations

import os

from opentelemetry import baggage, context, trace

tracer = trace.get_tracer("examples.auto_instrumented")


def call_model(question: str) -> str:
    with tracer.start_as_current_span("chat gpt-4o") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 500,
                "llm.api_key": "sk-proj-abcdefghijklmnopqrstuvwxyz123456",
            }
        )
        return f"answer to {question}"


def handle_request(request_id: str, tenant: str) -> str:
    # What an upstream service's W3C baggage header would carry into this process.
    ctx = baggage.set_baggage("correlation.id", request_id)
    ctx = baggage.set_baggage("tenant.id", tenant, ctx)
    token = context.attach(ctx)
    try:
        with tracer.start_as_current_span("handle_request"):
            return call_model("what is OTLP?")
    finally:
        context.detach(token)


if __name__ == "__main__":
    print(handle_request(os.environ.get("REQUEST_ID", "auto-req-1"), os.environ.get("TENANT", "acme")))
