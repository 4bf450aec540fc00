"""Reading protobuf's wire format directly, for the few hot paths where decoding whole messages costs too much."""

from __future__ import annotations

__all__ = ["elements_containing", "read_varint"]


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """(value, position after it) of the varint at ``at``; (-1, at) if it runs past the end or past 10 bytes."""
    value = shift = 0
    for i in range(at, min(at + 10, len(data))):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
    return -1, at


def elements_containing(data: bytes, field_number: int, needles: tuple[bytes, ...]) -> list[int] | None:
    """Indexes of the elements of the repeated message field ``field_number`` in the serialized message ``data``
    whose encoding contains one of ``needles``, in order.

    The cheap pre-check of the enrichment processors: an attribute key is written verbatim inside its item's
    encoding, so an item whose bytes contain none of the keys has none of them (an occurrence inside a value
    is a false positive the caller's exact check drops). Serializing in C, searching with ``bytes.find`` and
    walking only the field tags costs far less than reading every attribute key in python. None: the encoding
    holds a wire type OTLP does not use (groups) or does not parse, so every element must be looked at.
    """
    hits = sorted({pos for needle in needles for pos in _occurrences(data, needle)})
    if not hits:
        return []
    out: list[int] = []
    tag_wanted = (field_number << 3) | 2
    last = hits[-1]
    n_hits = len(hits)
    h = 0
    index = pos = 0
    end = len(data)
    while pos < end and pos <= last:
        tag = data[pos]  # OTLP's field numbers are < 16: a one-byte tag, else the general varint
        pos += 1
        if tag >= 0x80:
            tag, pos = read_varint(data, pos - 1)
        wire = tag & 7
        if wire == 2:
            length = data[pos] if pos < end else -1  # inline the one- and two-byte lengths (items under 16 KiB)
            if 0 <= length < 0x80:
                pos += 1
            elif pos + 1 < end and data[pos + 1] < 0x80:
                length = (length & 0x7F) | (data[pos + 1] << 7)
                pos += 2
            else:
                length, pos = read_varint(data, pos)
            if length < 0:
                return None
            stop = pos + length
            if tag == tag_wanted:
                while h < n_hits and hits[h] < pos:
                    h += 1
                if h < n_hits and hits[h] < stop:
                    out.append(index)
                index += 1
            pos = stop
        elif wire == 0:
            value, pos = read_varint(data, pos)
            if value < 0:
                return None
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:  # groups (3, 4), or a tag that did not parse: the caller looks at every element rather than guess
            return None
    return out


def _occurrences(data: bytes, needle: bytes) -> list[int]:
    found = []
    pos = data.find(needle)
    while pos >= 0:
        found.append(pos)
        pos = data.find(needle, pos + 1)  # overlapping occurrences too
    return found
