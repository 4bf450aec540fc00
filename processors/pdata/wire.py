"""Reading protobuf's wire format directly, for the few hot paths where decoding whole messages costs too much."""

from __future__ import annotations

import bisect

__all__ = ["count_items", "items_containing", "read_varint"]

# Field numbers from an Export*ServiceRequest down to its items (spans, log records, metric data points): each
# level a set of length-delimited fields to descend into, the last the fields to count.
_TRACES_PATH: tuple[frozenset[int], ...] = (frozenset({1}), frozenset({2}), frozenset({2}))
_LOGS_PATH = _TRACES_PATH  # resource_logs, scope_logs, log_records
# resource_metrics, scope_metrics, metrics, the data (gauge, sum, histogram, exponential_histogram, summary),
# data_points
_METRICS_PATH = (frozenset({1}), frozenset({2}), frozenset({2}), frozenset({5, 7, 9, 10, 11}), frozenset({1}))
_PATHS = {"traces": _TRACES_PATH, "metrics": _METRICS_PATH, "logs": _LOGS_PATH}


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


def items_containing(
    data: bytes, path: tuple[int, ...], needles: tuple[bytes, ...]
) -> dict[tuple[int, ...], list[int]] | None:
    """The items whose encoding contains one of ``needles``, found by walking the serialized message ``data``
    down ``path`` (repeated message fields, e.g. resource_spans, scope_spans, spans: ``(1, 2, 2)``): for each
    innermost container with such items, keyed by its indexes along the path (``(resource, scope)``), their
    indexes in order.

    The cheap pre-check of the enrichment processors: an attribute key is written verbatim inside its item's
    encoding, so an item whose bytes contain none of the keys has none of them (an occurrence inside a value
    is a false positive the caller's exact check drops). Searching with ``bytes.find`` and walking only the field
    tags of the containers that hold an occurrence costs far less than reading every attribute key in python.
    None: the encoding holds a wire type OTLP does not use (groups) or does not parse, so every item must be
    looked at.
    """
    hits = sorted({pos for needle in needles for pos in _occurrences(data, needle)})
    out: dict[tuple[int, ...], list[int]] = {}
    if hits and not _descend(data, 0, len(data), path, hits, (), out):
        return None
    return out


def _descend(
    data: bytes,
    pos: int,
    end: int,
    path: tuple[int, ...],
    hits: list[int],
    at: tuple[int, ...],
    out: dict[tuple[int, ...], list[int]],
) -> bool:
    found = _elements_with_hits(data, pos, end, path[0], hits)
    if found is None:
        return False
    if len(path) == 1:
        if found:
            out[at] = [index for index, _, _ in found]
        return True
    return all(_descend(data, start, stop, path[1:], hits, (*at, index), out) for index, start, stop in found)


def _elements_with_hits(
    data: bytes, pos: int, end: int, field_number: int, hits: list[int]
) -> list[tuple[int, int, int]] | None:
    """(index, start, stop) of each element of field ``field_number`` in ``data[pos:end]`` holding one of the
    sorted positions ``hits``; the walk stops after the last hit inside the range."""
    h = bisect.bisect_left(hits, pos)
    n_hits = bisect.bisect_left(hits, end)
    if h == n_hits:
        return []
    out: list[tuple[int, int, int]] = []
    tag_wanted = (field_number << 3) | 2
    last = hits[n_hits - 1]
    index = 0
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
            stop = pos + length
            if length < 0 or stop > end:
                return None
            if tag == tag_wanted:
                while h < n_hits and hits[h] < pos:
                    h += 1
                if h < n_hits and hits[h] < stop:
                    out.append((index, pos, stop))
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


def count_items(signal: str, data: bytes) -> int | None:
    """How many items (spans, data points, log records) the serialized request ``data`` of ``signal`` ("traces",
    "metrics", "logs") holds, from its field tags alone: for counting a request refused before it was decoded,
    without decoding it. None if the encoding does not parse."""
    return _count(data, 0, len(data), _PATHS[signal])


def _count(data: bytes, pos: int, end: int, path: tuple[frozenset[int], ...]) -> int | None:
    fields, rest = path[0], path[1:]
    total = 0
    while pos < end:
        tag = data[pos]  # OTLP's field numbers are < 16: a one-byte tag, else the general varint
        pos += 1
        if tag >= 0x80:
            tag, pos = read_varint(data, pos - 1)
            if tag < 0:
                return None
        wire = tag & 7
        if wire == 2:
            length = data[pos] if pos < end else -1  # inline the one-byte lengths
            if 0 <= length < 0x80:
                pos += 1
            else:
                length, pos = read_varint(data, pos)
            if length < 0 or pos + length > end:
                return None
            if tag >> 3 in fields:
                if not rest:
                    total += 1
                else:
                    inner = _count(data, pos, pos + length, rest)
                    if inner is None:
                        return None
                    total += inner
            pos += length
        elif wire == 0:
            value, pos = read_varint(data, pos)
            if value < 0:
                return None
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            return None
    return total if pos == end else None
