"""Parsing a large protobuf message as a series of small parses, so that no single C call holds the GIL for long.

One upb parse is one C call, and it holds Python's GIL throughout: a 20 MiB OTLP request took 90 ms on an idle
machine and up to 650 ms on a loaded one, during which no other thread of the collector ran (health_check,
``/metrics``, the other receivers' listeners). Protobuf defines parsing a concatenation of encodings as merging
them, so parsing a message's encoding in consecutive slices of whole fields builds the same message; a repeated
message field too large for one slice (an OTLP request's one ``ResourceSpans`` holding every span) becomes a new
element parsed the same way. Between two slices the interpreter may switch threads, so a parse stalls the others
for one slice's worth (~1 ms).
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from processors.pdata.wire import read_varint

__all__ = ["PIECE_BYTES", "merge_in_pieces"]

# Parsed in one call at most (bar a single field larger than this, such as one huge string): ~1 ms of upb work.
PIECE_BYTES = 256 * 1024
# Levels of messages descended into at most. OTLP's items are 3 to 5 levels down; deeper is AnyValue nesting,
# parsed whole (upb's own recursion limit applies there).
_MAX_DEPTH = 6


def merge_in_pieces(message: Message, data: bytes, piece: int = PIECE_BYTES) -> None:
    """``message.MergeFromString(data)`` as parses of about ``piece`` bytes each; raises DecodeError as that does.

    What does not walk as protobuf's wire format (a truncated field, groups) is left to upb in one parse from the
    last whole field on, so a malformed encoding fails with upb's own error."""
    _merge(message, data, memoryview(data), 0, len(data), piece, _MAX_DEPTH)


def _merge(message: Message, data: bytes, view: memoryview, pos: int, end: int, piece: int, depth: int) -> None:
    """Merge ``data[pos:end]`` into ``message``; ``view`` is ``data``'s memoryview (slices without copies)."""
    if end - pos <= piece or depth == 0:
        message.MergeFromString(view[pos:end])
        return
    fields = message.DESCRIPTOR.fields_by_number
    start = pos  # data[start:pos] are whole fields not parsed yet
    while pos < end:
        at = pos
        tag = data[pos]  # OTLP's field numbers are < 16: a one-byte tag, else the general varint
        pos += 1
        if tag >= 0x80:
            tag, pos = read_varint(data, pos - 1)
        if tag & 7 == 2:
            # The general reader, not wire.py's inlined one: this walk runs only over bodies above a piece, where a
            # call per field is small beside upb's parse of it.
            length, pos = read_varint(data, pos)
            if length < 0 or pos + length > end:
                break
            if length > piece:
                field = fields.get(tag >> 3)
                if _is_message(field):
                    assert field is not None
                    if at > start:
                        message.MergeFromString(view[start:at])
                    target = getattr(message, field.name)
                    _merge(
                        target.add() if field.is_repeated else target, data, view, pos, pos + length, piece, depth - 1
                    )
                    start = pos = pos + length
                    continue
            pos += length
        else:  # only length-delimited fields can be large; the rest stays in the slice
            pos = _skip(data, pos, end, tag)
            if not 0 <= pos <= end:
                break
        if pos - start >= piece:
            message.MergeFromString(view[start:pos])
            start = pos
    if start < end:
        message.MergeFromString(view[start:end])  # the rest, whole fields or not: upb has the last word


def _is_message(field: FieldDescriptor | None) -> bool:
    return (
        field is not None
        and field.type == FieldDescriptor.TYPE_MESSAGE
        and not field.message_type.GetOptions().map_entry
    )


def _skip(data: bytes, pos: int, end: int, tag: int) -> int:
    """Where the field whose value starts at ``pos`` ends; -1 for what this walk does not read (left to upb)."""
    wire = tag & 7
    if tag < 0:
        return -1
    if wire == 0:
        value, pos = read_varint(data, pos)
        return pos if value >= 0 else -1
    if wire in (1, 5):
        return pos + (8 if wire == 1 else 4)
    return -1  # groups (3, 4) and invalid wire types
