"""OTLP/JSON: proto3 JSON with the OTLP spec's exceptions (trace and span ids are hex, not base64).

``google.protobuf.json_format`` does the rest of the mapping the spec asks for: lowerCamelCase keys
(original names accepted too), 64-bit integers as strings or numbers, enums as ints, unknown fields ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

__all__ = ["JSONError", "from_json", "to_json"]

# Fields holding trace/span ids anywhere in the three request types (spans, links, log records, exemplars).
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


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
    return message


def to_json(message: Message) -> bytes:
    """OTLP/JSON of ``message`` (hex ids, camelCase keys)."""
    # OTLP/JSON encodes enums as integers (spec: "enum values MUST be encoded as integer values").
    tree = json_format.MessageToDict(message, use_integers_for_enums=True)
    _ids_base64_to_hex(tree)
    return json.dumps(tree, separators=(",", ":")).encode("utf-8")
