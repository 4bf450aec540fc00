"""Run as a script (``tests/llm/test_instrumentations.py``) with the official openai-v2 instrumentation on the path:
the real openai client, instrumented by it, calls the fake provider at argv[1] (one plain call, one stream with
``include_usage``); our SDK enrichment prices the spans; prints each span's attributes as JSON lines."""

from __future__ import annotations

import json
import sys

import openai
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from processors.cost import default_price_table
from processors.sdk import EnrichingSpanProcessor


def main(url: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        EnrichingSpanProcessor(SimpleSpanProcessor(exporter), price_table=default_price_table(), redact=True)
    )
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="test", max_retries=0)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    stream = client.chat.completions.create(
        model="o4-mini",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    print(json.dumps({"streamed": text}))
    for span in exporter.get_finished_spans():
        print(json.dumps({"name": span.name, "attributes": dict(span.attributes or {})}, default=list))


if __name__ == "__main__":
    main(sys.argv[1])
