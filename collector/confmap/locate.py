"""Where each key of a YAML document is (line, column), by the same dotted paths the decoder reports.

Lets ``load_config`` prefix an error with ``file:line:col`` so an editor jumps to it. Expansion of ``${env:…}``
never changes the document's structure, so the paths of the parsed file are the paths of the decoded config.
"""

from __future__ import annotations

import yaml

__all__ = ["key_marks", "locate"]


def key_marks(text: str) -> dict[str, tuple[int, int]]:
    """Dotted path (``exporters.otlp/tempo.sending_queue``, ``…exporters[1]``) -> 1-based (line, column)."""
    marks: dict[str, tuple[int, int]] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return marks

    def walk(node: yaml.Node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = str(key_node.value)
                where = f"{path}.{key}" if path else key
                marks.setdefault(where, (key_node.start_mark.line + 1, key_node.start_mark.column + 1))
                walk(value_node, where)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                where = f"{path}[{i}]"
                marks.setdefault(where, (item.start_mark.line + 1, item.start_mark.column + 1))
                walk(item, where)

    if root is not None:
        walk(root, "")
    return marks


def locate(error: str, marks: dict[str, tuple[int, int]], source: str) -> str:
    """``source:line:col: error`` when the error's path (or its nearest parent) is in the document."""
    path = error.split(": ", 1)[0]
    while path:
        if path in marks:
            line, column = marks[path]
            return f"{source}:{line}:{column}: {error}"
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return error
