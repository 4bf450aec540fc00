"""Documentation of dataclass fields, read from their source: ``field(metadata={"doc": ...})``, an attribute
docstring right after the field, or the ``#`` comments above and after it; and the comment on the module constant a
default is written as. The configuration reference (``collector.config.reference``) is built from these.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import sys
import textwrap
import tokenize
import typing
from typing import Any

__all__ = ["class_summary", "field_docs", "first_paragraph", "rst_to_md", "type_hints"]

_IGNORED_COMMENT_PREFIXES = ("noqa", "type:", "pragma", "fmt:", "mypy:", "pyright:")


def type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an unresolvable annotation: fall back to what the dataclass recorded
        return {f.name: f.type for f in dataclasses.fields(cls)}


def _comments(source: str) -> dict[int, tuple[str, bool]]:
    """line number -> (comment text, whether the line holds only the comment)."""
    found: dict[int, tuple[str, bool]] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                text = tok.string.lstrip("#").strip()
                only = tok.line[: tok.start[1]].strip() == ""
                found[tok.start[0]] = (text, only)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return found


def _useful(comment: str) -> bool:
    return bool(comment) and not comment.lower().startswith(_IGNORED_COMMENT_PREFIXES)


def _comment_doc(stmt: ast.stmt, comments: dict[int, tuple[str, bool]]) -> str:
    """The ``#`` lines directly above ``stmt`` and a trailing comment on its lines, joined."""
    above: list[str] = []
    line = stmt.lineno - 1
    while line in comments and comments[line][1]:
        above.insert(0, comments[line][0])
        line -= 1
    end = stmt.end_lineno or stmt.lineno
    trailing = [comments[n][0] for n in range(stmt.lineno, end + 1) if n in comments and not comments[n][1]]
    return " ".join(c for c in (*above, *trailing) if _useful(c))


def _parse(source: str) -> tuple[ast.Module, dict[int, tuple[str, bool]]] | None:
    try:
        return ast.parse(source), _comments(source)
    except SyntaxError:
        return None


def _default_name(stmt: ast.AnnAssign) -> str | None:
    """``DEFAULT_X`` in ``x: T = DEFAULT_X`` or ``x: T = field(default=DEFAULT_X)``."""
    value = stmt.value
    if isinstance(value, ast.Call):
        value = next((k.value for k in value.keywords if k.arg == "default"), None)
    return value.id if isinstance(value, ast.Name) else None


def _source_docs(cls: type) -> tuple[dict[str, str], dict[str, str]]:
    """For one class body: field name -> doc (attribute docstring, else comments), and field name -> the
    module constant its default is written as."""
    try:
        parsed = _parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}, {}
    if parsed is None:
        return {}, {}
    tree, comments = parsed
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
    if node is None:
        return {}, {}
    docs: dict[str, str] = {}
    constants: dict[str, str] = {}
    body = node.body
    for i, stmt in enumerate(body):
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        name = stmt.target.id
        constant = _default_name(stmt)
        if constant:
            constants[name] = constant
        following = body[i + 1] if i + 1 < len(body) else None
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[name] = inspect.cleandoc(following.value.value)
            continue
        doc = _comment_doc(stmt, comments)
        if doc:
            docs[name] = doc
    return docs, constants


@functools.cache
def _constant_docs(module_name: str) -> dict[str, str]:
    """Module-level constant name -> its comment (``DEFAULT_FSYNC = True  # why``)."""
    module = sys.modules.get(module_name)
    try:
        parsed = _parse(inspect.getsource(module)) if module is not None else None
    except (OSError, TypeError):
        parsed = None
    if parsed is None:
        return {}
    tree, comments = parsed
    docs: dict[str, str] = {}
    for stmt in tree.body:
        targets = (
            stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
        )
        for target in targets:
            if isinstance(target, ast.Name):
                doc = _comment_doc(stmt, comments)
                if doc:
                    docs[target.id] = doc
    return docs


def field_docs(cls: type) -> tuple[dict[str, str], dict[str, str]]:
    """(field -> doc written for the field, field -> comment of the constant its default is written as)."""
    docs: dict[str, str] = {}
    constant_docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            own, constants = _source_docs(klass)
            docs.update(own)
            module_docs = _constant_docs(klass.__module__)
            constant_docs.update({f: module_docs[c] for f, c in constants.items() if c in module_docs})
    for f in dataclasses.fields(cls):
        doc = f.metadata.get("doc") if f.metadata else None
        if isinstance(doc, str) and doc.strip():
            docs[f.name] = inspect.cleandoc(doc)
    return docs, constant_docs


def class_summary(cls: type) -> str:
    doc = cls.__dict__.get("__doc__")
    # dataclasses synthesise "Name(field: type, ...)" when there is no docstring: not documentation.
    if not doc or doc.startswith(f"{cls.__name__}("):
        return ""
    return first_paragraph(doc)


def first_paragraph(text: str) -> str:
    lines: list[str] = []
    for line in inspect.cleandoc(text).splitlines():
        if not line.strip():
            if lines:
                break
            continue
        lines.append(line.strip())
    return rst_to_md(" ".join(lines))


def rst_to_md(text: str) -> str:
    text = text.replace("``", "`")
    for role in (":class:", ":func:", ":meth:", ":attr:", ":mod:", ":data:"):
        text = text.replace(role, "")
    return text
