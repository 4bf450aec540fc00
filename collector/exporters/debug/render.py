"""Text renderings of OTLP requests for the debug exporter: one-line summary, one line per item, full dump."""

from __future__ import annotations

from typing import Any

from google.protobuf import text_encoding, text_format

from collector.component import Request, Signal

__all__ = ["detailed", "normal_lines", "summary"]


def _attrs(kvs: Any) -> str:
    return " ".join(f"{kv.key}={_value(kv.value)}" for kv in kvs)


def _value(v: Any) -> str:
    kind = v.WhichOneof("value")
    if kind is None:
        return "<empty>"
    if kind in ("array_value", "kvlist_value"):
        return str(text_format.MessageToString(getattr(v, kind), as_one_line=True))
    if kind == "bytes_value":
        return str(v.bytes_value.hex())
    return str(getattr(v, kind))


def _groups(signal: Signal, request: Any) -> list[tuple[Any, list[tuple[Any, list[Any]]]]]:
    """[(resource, [(scope, items)])] for any signal."""
    out = []
    if signal is Signal.TRACES:
        for rs in request.resource_spans:
            out.append((rs.resource, [(ss.scope, list(ss.spans)) for ss in rs.scope_spans]))
    elif signal is Signal.LOGS:
        for rl in request.resource_logs:
            out.append((rl.resource, [(sl.scope, list(sl.log_records)) for sl in rl.scope_logs]))
    else:
        for rm in request.resource_metrics:
            scopes = []
            for sm in rm.scope_metrics:
                points: list[Any] = []
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    if kind is not None:
                        points.extend((m, dp) for dp in getattr(m, kind).data_points)
                scopes.append((sm.scope, points))
            out.append((rm.resource, scopes))
    return out


_RESOURCE_WORD = {Signal.TRACES: "resource spans", Signal.METRICS: "resource metrics", Signal.LOGS: "resource logs"}
_ITEM_WORD = {Signal.TRACES: "spans", Signal.METRICS: "data points", Signal.LOGS: "log records"}
_KIND = {Signal.TRACES: "Spans", Signal.METRICS: "Metrics", Signal.LOGS: "Logs"}


def summary(signal: Signal, request: Request, exporter: str) -> str:
    """Upstream's basic verbosity: one line of counts."""
    groups = _groups(signal, request)
    n = sum(len(items) for _, scopes in groups for _, items in scopes)
    return (
        f"{signal.value.capitalize()} {{exporter: {exporter}, {_RESOURCE_WORD[signal]}: {len(groups)}, "
        f"{_ITEM_WORD[signal]}: {n}}}"
    )


def _point_value(dp: Any) -> str:
    if "value" in dp.DESCRIPTOR.oneofs_by_name:
        kind = dp.WhichOneof("value")
        return str(getattr(dp, kind)) if kind else ""
    return f"count={dp.count} sum={dp.sum}" if dp.HasField("sum") else f"count={dp.count}"


def normal_lines(signal: Signal, request: Request) -> list[str]:
    """Upstream's normal verbosity: one line per item (name, ids, attributes) under its resource and scope."""
    lines = []
    for resource, scopes in _groups(signal, request):
        lines.append(f"Resource{_KIND[signal]} {_attrs(resource.attributes)}".rstrip())
        for scope, items in scopes:
            lines.append(f"Scope{_KIND[signal]} {scope.name} {scope.version}".rstrip())
            for item in items:
                if signal is Signal.TRACES:
                    lines.append(f"{item.name} {item.trace_id.hex()} {item.span_id.hex()} {_attrs(item.attributes)}")
                elif signal is Signal.LOGS:
                    lines.append(
                        f"{_value(item.body)} {item.trace_id.hex()} {item.span_id.hex()} {_attrs(item.attributes)}"
                    )
                else:
                    metric, dp = item
                    lines.append(f"{metric.name}{{{_attrs(dp.attributes)}}} {_point_value(dp)}")
    return [line.rstrip() for line in lines]


def detailed(signal: Signal, request: Request) -> str:
    """The whole request, ids in hex (as upstream's detailed verbosity prints them)."""
    text = text_format.MessageToString(request, as_utf8=True)
    # text_format escapes bytes; rewrite id fields in hex so they match what tracing backends show.
    out = []
    for line in text.splitlines():
        stripped = line.lstrip()
        for key in ("trace_id: ", "span_id: ", "parent_span_id: "):
            if stripped.startswith(key):
                raw = _unescape(stripped[len(key) :])
                line = line[: len(line) - len(stripped)] + key + raw.hex()
                break
        out.append(line)
    return "\n".join(out)


def _unescape(quoted: str) -> bytes:
    unescaped: bytes = text_encoding.CUnescape(quoted[1:-1])
    return unescaped
