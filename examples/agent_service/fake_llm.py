"""A deterministic stand-in for an LLM API: same prompt, same answer, same token usage, every time.

Token counts follow a plausible ~4 characters per token so that costs look like production's; latency is
simulated with ``asyncio.sleep`` scaled by output tokens (this is the example app, not a test).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from otel_metrics import record_llm_usage, track_performance

PROVIDERS = {
    "gpt-4o-mini": "openai",
    "gpt-4o": "openai",
    "claude-sonnet-4": "anthropic",
    "gemini-2.5-flash": "gcp.gemini",
}


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int


def _digest(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x00".join(parts).encode()).digest()[:8], "big")


class FakeLLM:
    """``complete()`` is traced like a GenAI client call: model, provider, tokens and cost on the span."""

    def __init__(self, *, latency_per_token_s: float = 0.0004) -> None:
        self.latency_per_token_s = latency_per_token_s

    @track_performance("llm", name="chat")
    async def complete(self, model: str, system: str, prompt: str) -> Completion:
        seed = _digest(model, system, prompt)
        input_tokens = max(1, (len(system) + len(prompt)) // 4) + 12
        output_tokens = 40 + seed % 360
        # Providers cache long shared system prompts: about half of them count as cached reads.
        cached = (len(system) // 4) if seed % 2 else 0
        await asyncio.sleep(output_tokens * self.latency_per_token_s)
        record_llm_usage(model, input_tokens, output_tokens, provider=PROVIDERS.get(model), cached_input_tokens=cached)
        words = ("plan", "search", "verify", "summarise", "answer", "cite", "rank", "refine")
        text = " ".join(words[(seed >> (3 * i)) % len(words)] for i in range(8))
        return Completion(text, model, input_tokens, output_tokens, cached)
