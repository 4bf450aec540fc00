"""OTLP data as the pipeline sees it: the one home of the facts about the three signals.

Upstream keeps these in ``pdata``, below receivers, processors and exporters alike; so does this package, in
``processors`` (the lowest room):

- ``signals``: the signal table (request and response types, item names, partial-success fields, OTLP/HTTP paths,
  gRPC services) and building/parsing requests and responses;
- ``shape``: walking resource -> scope -> item, counting items, splitting and merging requests, dropping items
  whose ids have the wrong length;
- ``wire``: reading protobuf's wire format directly (varints, elements holding a byte string);
- ``otlpjson``: the OTLP/JSON codec.
"""

from __future__ import annotations

from processors.pdata.otlpjson import PIECE_CHARS, JSONError, from_json, to_json
from processors.pdata.shape import (
    drop_bad_ids,
    item_count,
    iter_log_records,
    iter_spans,
    merge_into,
    metric_points,
    resource_entries,
    scope_item_count,
    take_items,
)
from processors.pdata.signals import (
    SIGNALS,
    Request,
    Response,
    Signal,
    SignalSpec,
    new_request,
    new_response,
    parse_request,
    rejected_items,
)
from processors.pdata.wire import count_items, items_containing, read_varint

__all__ = [
    "PIECE_CHARS",
    "SIGNALS",
    "JSONError",
    "Request",
    "Response",
    "Signal",
    "SignalSpec",
    "count_items",
    "drop_bad_ids",
    "from_json",
    "item_count",
    "items_containing",
    "iter_log_records",
    "iter_spans",
    "merge_into",
    "metric_points",
    "new_request",
    "new_response",
    "parse_request",
    "read_varint",
    "rejected_items",
    "resource_entries",
    "scope_item_count",
    "take_items",
    "to_json",
]
