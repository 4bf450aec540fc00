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
* the same span seen again (same trace and span id: a re-export) is not a duplicate of itself.

Whatever order the spans of one call arrive in, exactly one holds the cost, as long as they pass through one
process (the app's SDK, or one collector) within the registry's memory (``DEFAULT_MAX_CALLS`` recent calls).
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
