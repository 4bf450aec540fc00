"""OTLP/JSON: proto3 JSON with the OTLP spec's exceptions (trace and span ids are hex, not base64).

``google.protobuf.json_format`` does the rest of the mapping the spec asks for: lowerCamelCase keys
(original names accepted too), 64-bit integers as strings or numbers, enums as ints, unknown fields ignored.

A body larger than ``PIECE_CHARS`` is decoded one item at a time. ``json.loads`` is one C call holding Python's
GIL for the whole body (a 20 MiB body: 0.25-0.8 s in which no other thread of the collector ran, health_check and
``/metrics`` included), and the tree it builds, millions of objects, was 10x the body in memory. So the request's
skeleton (resource entries, scope entries, a metric's data) is walked here, and each item (a span, a log record, a
data point) is decoded by ``json.JSONDecoder.raw_decode`` and converted on its own, then dropped: between two items
other threads run, and no more than one item's tree is alive at once. The json module has no incremental parser;
the walk below reads only the few structural tokens between items and leaves every value to it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from processors.pdata.signals import SIGNALS, Signal

__all__ = ["PIECE_CHARS", "JSONError", "from_json", "to_json"]

# Bodies up to this many characters are decoded whole (a few ms of json.loads).
PIECE_CHARS = 256 * 1024

# Fields holding trace/span ids anywhere in the three request types (spans, links, log records, exemplars).
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_CONVERSION_ERRORS = (json_format.ParseError, binascii.Error, ValueError, TypeError)


class JSONError(ValueError):
    """The body is not valid OTLP/JSON; the message says where."""


class _BadId(ValueError):
    def __init__(self, key: str, value: str) -> None:
        super().__init__(f"expected a hex id, got {value[:40]!r}")
        self.path = [key]


def _ids_hex_to_base64(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                except ValueError:
                    raise _BadId(key, value) from None
            elif isinstance(value, (dict, list)):
                try:
                    _ids_hex_to_base64(value)
                except _BadId as exc:
                    exc.path.append(key)
                    raise
    elif isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, (dict, list)):
                try:
                    _ids_hex_to_base64(item)
                except _BadId as exc:
                    exc.path.append(f"[{i}]")
                    raise


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


def _join(path: str, steps: list[str]) -> str:
    for step in reversed(steps):
        path = f"{path}{step}" if step.startswith("[") or not path else f"{path}.{step}"
    return path


def _convert(tree: dict[str, Any], message: Message, path: str) -> None:
    """Merge the decoded object ``tree`` (at ``path`` in the body) into ``message``."""
    try:
        _ids_hex_to_base64(tree)
        json_format.ParseDict(tree, message, ignore_unknown_fields=True)
    except _BadId as exc:
        raise JSONError(f"{_join(path, exc.path)}: {exc}") from None
    except RecursionError:
        raise JSONError("invalid OTLP/JSON: nested too deeply") from None
    except _CONVERSION_ERRORS as exc:
        raise JSONError(f"invalid OTLP/JSON{' at ' + path if path else ''}: {exc}") from exc


def from_json(body: bytes | str, message: Message, piece: int = PIECE_CHARS) -> Message:
    """Parse an OTLP/JSON body into ``message`` (in place) and return it; JSONError says what is wrong. A body
    longer than ``piece`` characters is decoded an item at a time."""
    # Nesting deeper than the interpreter's recursion limit (a hostile body, not telemetry) overflows json's and
    # json_format's recursive descent: that is a bad body too, not a server error.
    try:
        text = body if isinstance(body, str) else body.decode(json.detect_encoding(body))
        if len(text) <= piece:
            tree = json.loads(text)
            if not isinstance(tree, dict):
                raise JSONError(f"expected a JSON object, got {type(tree).__name__}")
            _convert(tree, message, "")
        else:
            _Pieces(text).root(message)
    except RecursionError:
        raise JSONError("invalid JSON: nested too deeply") from None
    except JSONError:
        raise
    except ValueError as exc:  # json's JSONDecodeError, UnicodeDecodeError
        raise JSONError(f"invalid JSON: {exc}") from exc
    return message


def _descent() -> dict[Descriptor, dict[str, FieldDescriptor]]:
    """Per message type of a request's skeleton, the fields (by JSON and original name) walked into rather than
    decoded whole: resource entries, scope entries, items; for a metric, its data and that data's points."""
    table: dict[Descriptor, dict[str, FieldDescriptor]] = {}

    def walk(field: FieldDescriptor) -> Descriptor:
        table.setdefault(field.containing_type, {}).update({field.name: field, field.json_name: field})
        message_type: Descriptor = field.message_type
        return message_type

    items: dict[Signal, Descriptor] = {}
    for signal, spec in SIGNALS.items():
        resource = walk(spec.request_type.DESCRIPTOR.fields_by_name[spec.resource_field])
        scope = walk(resource.fields_by_name[spec.scope_field])
        items[signal] = walk(scope.fields_by_name[spec.item_field])
    for data in items[Signal.METRICS].oneofs_by_name["data"].fields:
        walk(walk(data).fields_by_name["data_points"])
    return table


_DESCENT = _descent()


class _Pieces:
    """One body's walk: ``root`` parses it into a request message."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _skip(self, pos: int) -> int:
        match = _WHITESPACE.match(self.text, pos)
        assert match is not None  # the pattern matches the empty string
        return match.end()

    def _expected(self, what: str, pos: int) -> json.JSONDecodeError:
        return json.JSONDecodeError(f"Expecting {what}", self.text, pos)

    def root(self, message: Message) -> None:
        pos = self._skip(0)
        if not self.text.startswith("{", pos):
            raise JSONError(f"expected a JSON object, got {self.text[pos : pos + 20]!r}")
        pos = self._skip(self._object(pos, message, ""))
        if pos != len(self.text):
            raise json.JSONDecodeError("Extra data", self.text, pos)

    def _object(self, pos: int, message: Message, path: str) -> int:
        """Parse the object at ``pos`` into ``message``; the position after it."""
        text = self.text
        descend = _DESCENT.get(message.DESCRIPTOR, {})
        rest: dict[str, Any] = {}  # what is not walked into, converted at once at the end (as json_format would)
        walked: set[str] = set()
        pos = self._skip(pos + 1)
        if text.startswith("}", pos):
            return pos + 1
        while True:
            if not text.startswith('"', pos):
                raise self._expected("property name enclosed in double quotes", pos)
            key, pos = _DECODER.raw_decode(text, pos)
            pos = self._skip(pos)
            if not text.startswith(":", pos):
                raise self._expected("':' delimiter", pos)
            pos = self._skip(pos + 1)
            field = descend.get(key)
            if field is not None and text.startswith("[" if field.is_repeated else "{", pos):
                self._walking(message, field, walked, rest, path)
                where = f"{path}.{key}" if path else key
                if field.is_repeated:
                    pos = self._items(pos, getattr(message, field.name), field, where)
                else:
                    part = getattr(message, field.name)
                    part.SetInParent()
                    pos = self._object(pos, part, where)
            else:
                rest[key], pos = _DECODER.raw_decode(text, pos)
            pos = self._skip(pos)
            if text.startswith(",", pos):
                pos = self._skip(pos + 1)
            elif text.startswith("}", pos):
                break
            else:
                raise self._expected("',' delimiter", pos)
        if rest:
            _convert(rest, message, path)
        return pos + 1

    @staticmethod
    def _walking(message: Message, field: FieldDescriptor, walked: set[str], rest: dict[str, Any], path: str) -> None:
        """Before ``field`` is walked into: the last of a field's occurrences wins, as with json.loads and
        json_format (a key given twice, or under both its names), and a oneof takes one member."""
        rest.pop(field.name, None)
        rest.pop(field.json_name, None)
        oneof = field.containing_oneof
        if field.name in walked:
            message.ClearField(field.name)
        elif oneof is not None:
            if oneof.name in walked:
                raise JSONError(f"invalid OTLP/JSON at {path}: more than one {oneof.name!r} field")
            walked.add(oneof.name)
        walked.add(field.name)

    def _items(self, pos: int, container: Any, field: FieldDescriptor, path: str) -> int:
        """Parse the array at ``pos`` into the repeated message field ``container``; the position after it."""
        text = self.text
        walked = field.message_type in _DESCENT
        pos = self._skip(pos + 1)
        if text.startswith("]", pos):
            return pos + 1
        i = 0
        while True:
            if walked and text.startswith("{", pos):
                pos = self._object(pos, container.add(), f"{path}[{i}]")
            else:
                item, pos = _DECODER.raw_decode(text, pos)
                if not isinstance(item, dict):
                    raise JSONError(f"{path}[{i}]: expected an object, got {type(item).__name__}")
                _convert(item, container.add(), f"{path}[{i}]")
            pos = self._skip(pos)
            if text.startswith(",", pos):
                pos = self._skip(pos + 1)
                i += 1
            elif text.startswith("]", pos):
                return pos + 1
            else:
                raise self._expected("',' delimiter", pos)


def to_json(message: Message) -> bytes:
    """OTLP/JSON of ``message`` (hex ids, camelCase keys)."""
    # OTLP/JSON encodes enums as integers (spec: "enum values MUST be encoded as integer values").
    tree = json_format.MessageToDict(message, use_integers_for_enums=True)
    _ids_base64_to_hex(tree)
    return json.dumps(tree, separators=(",", ":")).encode("utf-8")
