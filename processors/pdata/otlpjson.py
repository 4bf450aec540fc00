"""OTLP/JSON: proto3 JSON with the OTLP spec's exceptions (trace and span ids are hex, not base64).

``google.protobuf.json_format`` does the rest of the mapping the spec asks for: lowerCamelCase keys
(original names accepted too), 64-bit integers as strings or numbers, enums as ints, unknown fields ignored.
"""

from __future__ import annotations

import base64
import binascii
import gc
import json
import threading
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

__all__ = ["JSONError", "from_json", "to_json"]

# Fields holding trace/span ids anywhere in the three request types (spans, links, log records, exemplars).
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


# Bodies larger than this have their parsed tree freed in slices of _FREE_SLICE items, down to _FREE_DEPTH levels
# (an OTLP/JSON request's items are 3 to 5 levels down).
_FREE_IN_SLICES_ABOVE = 1 << 20
_FREE_SLICE = 1000
_FREE_DEPTH = 6


class JSONError(ValueError):
    """The body is not valid OTLP/JSON; the message says where."""


def _ids_hex_to_base64(node: Any, path: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else key
            if key in _ID_KEYS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                except ValueError as exc:
                    raise JSONError(f"{where}: expected a hex id, got {value[:40]!r}") from exc
            else:
                _ids_hex_to_base64(value, where)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _ids_hex_to_base64(item, f"{path}[{i}]")


def _ids_base64_to_hex(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _ids_base64_to_hex(value)
    elif isinstance(node, list):
        for item in node:
            _ids_base64_to_hex(item)


def from_json(body: bytes | str, message: Message) -> Message:
    """Parse an OTLP/JSON body into ``message`` (in place) and return it; JSONError says what is wrong."""
    with _gc_paused:
        _parse_into(body, message)  # the JSON tree is freed on return, before the collector can run again
    return message


def _parse_into(body: bytes | str, message: Message) -> None:
    # Nesting deeper than the interpreter's recursion limit (a hostile body, not telemetry) overflows
    # json's and json_format's recursive descent: that is a bad body too, not a server error.
    try:
        tree = json.loads(body)
    except RecursionError:
        raise JSONError("invalid JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise JSONError(f"invalid JSON: {exc}") from exc
    if not isinstance(tree, dict):
        raise JSONError(f"expected a JSON object, got {type(tree).__name__}")
    try:
        _ids_hex_to_base64(tree, "")
        json_format.ParseDict(tree, message, ignore_unknown_fields=True)
    except RecursionError:
        raise JSONError("invalid OTLP/JSON: nested too deeply") from None
    except (json_format.ParseError, binascii.Error, ValueError, TypeError) as exc:
        raise JSONError(f"invalid OTLP/JSON: {exc}") from exc
    finally:
        if len(body) > _FREE_IN_SLICES_ABOVE:
            _free_in_slices(tree, 0)


def _free_in_slices(node: Any, depth: int) -> None:
    """Empty the tree's long lists (a request's spans, log records, data points) a slice at a time. Dropped whole,
    a 20 MiB body's tree is one deallocation of millions of objects: 0.26 s holding the GIL. Between slices other
    threads run."""
    if depth > _FREE_DEPTH:
        return
    if isinstance(node, dict):
        for value in node.values():
            if isinstance(value, (dict, list)):
                _free_in_slices(value, depth + 1)
    elif isinstance(node, list):
        if len(node) > _FREE_SLICE:
            while node:
                del node[-_FREE_SLICE:]
        else:
            for item in node:
                _free_in_slices(item, depth + 1)


class _GCPause:
    """The cyclic GC paused while any thread decodes a JSON body. The body's tree (20 MiB: millions of dicts and
    lists) is alive throughout, and every full collection scanned it whole holding the GIL: 8 of them during one
    body, up to 0.36 s each, when no other thread of the collector (health_check, ``/metrics``) could answer. The
    tree has no cycles: reference counting frees it all the same. The first thread in records whether the GC was
    on, the last one out restores that."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._inside == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._inside += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0 and self._was_enabled:
                gc.enable()


_gc_paused = _GCPause()


def to_json(message: Message) -> bytes:
    """OTLP/JSON of ``message`` (hex ids, camelCase keys)."""
    # OTLP/JSON encodes enums as integers (spec: "enum values MUST be encoded as integer values").
    tree = json_format.MessageToDict(message, use_integers_for_enums=True)
    _ids_base64_to_hex(tree)
    return json.dumps(tree, separators=(",", ":")).encode("utf-8")
