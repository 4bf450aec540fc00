"""A local fake of the OpenAI chat completions and Anthropic messages APIs (Starlette), with realistic bodies:
usage with cached and reasoning tokens (OpenAI), cache reads and 5-minute/1-hour cache writes (Anthropic), and
streamed responses as server-sent events (OpenAI's final usage chunk with ``stream_options.include_usage``;
Anthropic's ``message_start``/``message_delta`` usage). Every response's usage is recorded, so a test can
compute the bill by hand from what the provider said.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# What each model answers with: (input incl. cache, cached/cache read, cache write 5m, cache write 1h, output,
# reasoning). OpenAI has no cache writes; Anthropic reports reasoning inside output.
USAGE = {
    "gpt-4o-mini": (1_200, 1_024, 0, 0, 80, 0),
    "o4-mini": (300, 0, 0, 0, 900, 640),
    "claude-sonnet-4-20250514": (12_000, 8_000, 3_000, 0, 400, 0),
    "claude-3-5-haiku-20241022": (900, 0, 0, 0, 120, 0),
}

# The dated model a response names (what the sink's model column holds: the response model wins).
RESPONSE_MODELS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "o4-mini": "o4-mini-2025-04-16"}


def response_model(model: str) -> str:
    return RESPONSE_MODELS.get(model, model)


@dataclass
class Served:
    """Every response the fake gave: (api, model, response id, usage tuple)."""

    calls: list[tuple[str, str, str, tuple[int, ...]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, api: str, model: str, usage: tuple[int, ...]) -> str:
        with self.lock:
            response_id = f"{'chatcmpl' if api == 'openai' else 'msg'}-{len(self.calls) + 1:04d}"
            self.calls.append((api, model, response_id, usage))
        return response_id


def _sse(events: list[tuple[str | None, dict[str, Any] | str]]) -> AsyncIterator[bytes]:
    async def body() -> AsyncIterator[bytes]:
        for event, data in events:
            text = data if isinstance(data, str) else json.dumps(data)
            yield ((f"event: {event}\n" if event else "") + f"data: {text}\n\n").encode()

    return body()


def _openai(served: Served) -> Any:
    async def chat(request: Request) -> Response:
        body = await request.json()
        model = body["model"]
        n_in, cached, _, _, n_out, reasoning = USAGE[model]
        rid = served.record("openai", model, USAGE[model])
        usage = {
            "prompt_tokens": n_in,
            "completion_tokens": n_out,
            "total_tokens": n_in + n_out,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0},
        }
        base = {"id": rid, "created": 1_760_000_000, "model": response_model(model), "system_fingerprint": "fp_1"}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "Hello from the fake.", "refusal": None}
            choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
            return JSONResponse({**base, "object": "chat.completion", "choices": [choice], "usage": usage})
        chunk = {**base, "object": "chat.completion.chunk"}
        events: list[tuple[str | None, dict[str, Any] | str]] = [
            (None, {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            (None, {**chunk, "choices": [{"index": 0, "delta": {"content": "Hello "}}]}),
            (None, {**chunk, "choices": [{"index": 0, "delta": {"content": "stream."}}]}),
            (None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        ]
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append((None, {**chunk, "choices": [], "usage": usage}))
        events.append((None, "[DONE]"))
        return StreamingResponse(_sse(events), media_type="text/event-stream")

    return chat


def _anthropic_usage(model: str) -> dict[str, Any]:
    n_in, read, write_5m, write_1h, n_out, _ = USAGE[model]
    return {
        "input_tokens": n_in - read - write_5m - write_1h,  # Anthropic's count excludes the cache
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write_5m + write_1h,
        "cache_creation": {"ephemeral_5m_input_tokens": write_5m, "ephemeral_1h_input_tokens": write_1h},
        "output_tokens": n_out,
        "service_tier": "standard",
    }


def _anthropic(served: Served) -> Any:
    async def messages(request: Request) -> Response:
        body = await request.json()
        model = body["model"]
        rid = served.record("anthropic", model, USAGE[model])
        usage = _anthropic_usage(model)
        message = {"id": rid, "type": "message", "role": "assistant", "model": model}
        if not body.get("stream"):
            content = [{"type": "text", "text": "Hello from the fake."}]
            return JSONResponse(
                {**message, "content": content, "stop_reason": "end_turn", "stop_sequence": None, "usage": usage}
            )
        start_usage = {**usage, "output_tokens": 1}
        events: list[tuple[str | None, dict[str, Any] | str]] = [
            ("message_start", {"type": "message_start", "message": {**message, "content": [], "stop_reason": None,
                                                                       "stop_sequence": None, "usage": start_usage}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "Hello stream."}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": usage["output_tokens"]}}),
            ("message_stop", {"type": "message_stop"}),
        ]  # fmt: skip
        return StreamingResponse(_sse(events), media_type="text/event-stream")

    return messages


def app(served: Served) -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/chat/completions", _openai(served), methods=["POST"]),
            Route("/v1/messages", _anthropic(served), methods=["POST"]),
        ]
    )


@contextmanager
def running(served: Served) -> Iterator[str]:
    """The fake on a free loopback port; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app(served), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(1000):
        if server.started:
            break
        started.wait(0.01)
    assert server.started, "fake provider did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
