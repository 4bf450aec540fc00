"""One call, one price: spans that report the same LLM response (``gen_ai.response.id``) are priced once.

One API call is often seen as several spans: a provider SDK's own tracing plus an instrumentation of the same
client (both set ``gen_ai.response.id``), two instrumentations of one client, or one span exported by two
processes. Both faces keep a bounded registry of recent response ids (``CallRegistry``) and decide per span:

* the span that holds the cost is the first **priced** span of the response (one whose usage has an input token
  count: the Anthropic SDK's tracing reports none for a message that is not streamed, so then an
  instrumentation's span of the same call holds it);
* every other span of the response is a duplicate: it keeps its attributes (it stays visible), loses
  ``cost.usd`` and gets ``cost.duplicate_of`` = the holder's span id (hex), so no sum counts the call twice and
  ``otel-metrics costs`` can say how many were folded;
* the same span seen again (same trace and span id: a re-export) is not a duplicate of itself;
* a span that repeats the usage of one of its children (same model and token counts: a framework's span, such
  as LangChain's, around the client call an instrumentation traced) is a duplicate of that child. Children end
  before their parents, so the child is seen first within one process.

Whatever order the spans of one call arrive in, exactly one holds the cost, as long as they pass through one
process (the app's SDK, or one collector) within the registry's memory (``DEFAULT_MAX_CALLS`` recent calls). Across
processes, the PostgreSQL sink folds them as they are stored (``collector.exporters.postgres.calls``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["DEFAULT_MAX_CALLS", "DUPLICATE_OF_KEY", "RESPONSE_ID_KEY", "CallRegistry"]

RESPONSE_ID_KEY = "gen_ai.response.id"
DUPLICATE_OF_KEY = "cost.duplicate_of"
# Recent calls remembered: duplicates of one call end within milliseconds of each other, so this only needs to
# cover the calls in flight between two exports; bounded so a flood of ids cannot grow memory.
DEFAULT_MAX_CALLS = 65_536


class CallRegistry:
    """Recent LLM responses: response id -> (the span holding its cost, or the first seen; whether priced)."""

    def __init__(self, max_calls: int = DEFAULT_MAX_CALLS) -> None:
        self._calls: OrderedDict[str, tuple[bytes, bool]] = OrderedDict()
        # (trace id + parent span id, model and usage) -> the priced child span's key
        self._children: OrderedDict[tuple[bytes, tuple[object, ...]], bytes] = OrderedDict()
        self._max = max_calls
        self._lock = threading.Lock()

    def claim(self, response_id: str, span_key: bytes, priced: bool) -> bytes | None:
        """None when the span ``span_key`` (trace id + span id) holds the call's cost (or is the call's only span
        so far); otherwise the key of the span that holds it: this span is a duplicate."""
        with self._lock:
            calls = self._calls
            entry = calls.get(response_id)
            if entry is None:
                calls[response_id] = (span_key, priced)
                if len(calls) > self._max:
                    calls.popitem(last=False)
                return None
            holder, holder_priced = entry
            if holder == span_key:
                return None
            if priced and not holder_priced:
                calls[response_id] = (span_key, True)
                return None
            return holder

    def priced_child(self, span_key: bytes, parent_id: bytes, usage: tuple[object, ...]) -> None:
        """Remember a priced span (``span_key``) under its parent, by model and usage (``repeats_child``)."""
        if not parent_id:
            return
        with self._lock:
            children = self._children
            children[(span_key[:16] + parent_id, usage)] = span_key
            if len(children) > self._max:
                children.popitem(last=False)

    def repeats_child(self, span_key: bytes, usage: tuple[object, ...]) -> bytes | None:
        """The key of a priced child of ``span_key`` with this same model and usage, or None."""
        with self._lock:
            return self._children.get((span_key, usage))

    def holder(
        self,
        response_id: object,
        span_key: bytes,
        parent_id: bytes,
        priced: bool,
        usage: tuple[object, ...] | None,
    ) -> bytes | None:
        """The key of the span holding the cost of the call ``span_key`` reports, when that is another span (this
        one is then a duplicate); None when this span holds it. ``usage``: its model and token counts, if any."""
        if usage is not None:
            child = self.repeats_child(span_key, usage)
            if child is not None:
                return child
        if isinstance(response_id, str) and response_id:
            holder = self.claim(response_id, span_key, priced)
            if holder is not None:
                return holder
        if priced and usage is not None:
            self.priced_child(span_key, parent_id, usage)
        return None
