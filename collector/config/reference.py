"""The configuration reference (docs/configuration.md), generated from the components' config dataclasses.

``python -m collector.config.reference > docs/configuration.md`` regenerates it; a test fails when the committed
file differs from ``render_reference()``, so the reference cannot drift from the code.

What is read, per component type in ``collector.components.registry()``:

* the summary: the first paragraph of ``README.md`` in the component's folder when there is one (it is written
  for users), else the first paragraph of the module docstring of the module that registers the factory;
* the keys: every ``init`` field of ``factory.config_type``, recursively (nested dataclasses give dotted keys,
  lists of dataclasses ``key[].sub``, maps of dataclasses ``key.<name>.sub``), with the type as written in YAML,
  the range declared on the field (``collector.confmap.bounds``) and the default the decoder starts from (the
  value in the config type's default instance);
* each key's doc, first match wins:
  1. ``field(metadata={"doc": "..."})``;
  2. an attribute docstring: a string literal statement right after the field (PEP 257/Sphinx convention);
  3. comments: the block of ``#`` lines directly above the field plus a trailing comment on its line
     (``noqa``/``type:``/``pragma`` comments are ignored). The class source is parsed with ``ast`` and
     ``tokenize``; a nested section without its own doc uses its dataclass's docstring;
  4. otherwise the ``meaning`` column of the key's row in the component README's option table
     (``| key | default | meaning |``), where components document their options for users;
  5. otherwise the comment on the module constant the default is written as (``DEFAULT_FSYNC = True  # why``).

  Defaults always come from the code, never from a README.
* the signals the factory supports (``signals``; ``routes`` for connectors).

Factories sharing one config type in one module (``otlp`` and ``otlp_grpc``) are one entry with aliases.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import posixpath
import re
import sys
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from collector.components import KINDS, Registry, registry
from collector.config.field_docs import class_summary, field_docs, first_paragraph, rst_to_md, type_hints
from collector.config.model import TelemetryConfig
from collector.config.yaml_values import (
    NONE,
    default_instance,
    default_text,
    format_duration,
    is_dataclass_type,
    optional_args,
    plain,
    yaml_type,
)
from collector.confmap.bounds import Bounds, field_bounds
from collector.confmap.expand import expand_env
from processors.pipeline import Signal

__all__ = ["KIND_ORDER", "ComponentDoc", "KeyRow", "component_docs", "format_duration", "key_rows", "render_reference"]

KIND_ORDER = KINDS
COMMAND = "python -m collector.config.reference > docs/configuration.md"
_DOCS_DIR = "docs"  # where the reference lives (repo-relative): README links are rebased onto it

_KIND_TITLES = {
    "receivers": "Receivers",
    "processors": "Processors",
    "exporters": "Exporters",
    "connectors": "Connectors",
    "extensions": "Extensions",
}
_SIGNAL_ORDER = {s: i for i, s in enumerate(Signal)}

# (value written in YAML, environment, what the component receives): rendered into the reference and checked
# against collector.confmap.expand by tests/docs/test_configuration_reference.py.
ENV_EXAMPLES: tuple[tuple[str, dict[str, str], Any], ...] = (
    ("${env:OTLP_PORT}", {"OTLP_PORT": "4317"}, 4317),
    ("localhost:${env:OTLP_PORT}", {"OTLP_PORT": "4317"}, "localhost:4317"),
    ("${env:DATA_DIR:-./data}", {}, "./data"),
    ("${env:DATA_DIR:-./data}", {"DATA_DIR": "/var/lib/otel"}, "/var/lib/otel"),
    ("${env:MISSING}", {}, ""),
    ("${MEMORY_LIMIT_MIB}", {"MEMORY_LIMIT_MIB": "512"}, 512),
    ("$${env:NOT_EXPANDED}", {}, "${env:NOT_EXPANDED}"),
)


@dataclass(frozen=True)
class KeyRow:
    """One YAML key of a component's config."""

    path: str  # "protocols.grpc.endpoint", "actions[].key", "overrides.<name>.x"
    yaml_type: str  # "string", "duration", "list of string", 'one of "a"|"b"', "mapping", "int, > 0"
    default: str  # already formatted for the reference ("200ms", "—", ...)
    doc: str
    # The value is a mapping whose keys are rows of their own ("mapping"), or a list of such mappings.
    section: Literal["", "mapping", "list", "map"] = ""


@dataclass(frozen=True)
class ComponentDoc:
    kind: str
    types: tuple[str, ...]  # the first is the heading, the rest are aliases
    module: str
    summary: str
    readme: str | None  # repo-relative path of the component's README.md, if any
    signals: str
    rows: tuple[KeyRow, ...]


# ---------------------------------------------------------------------------------------------------------------
# key rows


def key_rows(config_type: type, prefix: str = "", fallback_docs: Mapping[str, str] | None = None) -> list[KeyRow]:
    """Every YAML key of ``config_type`` (a dataclass), depth first, in field order.

    ``fallback_docs`` (key path -> text, e.g. from the component's README) documents keys the code does not;
    the comment on a field's default constant comes last.
    """
    try:
        instance = config_type()
    except TypeError:
        instance = None
    rows: list[KeyRow] = []
    _walk(config_type, instance, prefix, rows, (config_type,), fallback_docs or {})
    return rows


def _walk(
    cls: type,
    instance: Any,
    prefix: str,
    rows: list[KeyRow],
    stack: tuple[type, ...],
    fallback_docs: Mapping[str, str],
) -> None:
    hints = type_hints(cls)
    docs, constant_docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints.get(f.name, Any)
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        if instance is not None:
            value = getattr(instance, f.name)
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = None
        path = f"{prefix}{f.name}"
        _, args = optional_args(tp)
        inner = args[0] if len(args) == 1 else None
        nested, section, child_prefix = _nested(inner)
        doc = docs.get(f.name, "")
        if nested is not None and not doc:
            doc = class_summary(nested)
        doc = doc or fallback_docs.get(path, "") or constant_docs.get(f.name, "")
        rows.append(
            KeyRow(
                path=path,
                yaml_type=_type_text(tp, field_bounds(f)),
                default=default_text(value, tp, has_default),
                doc=rst_to_md(" ".join(doc.split())),
                section=section,
            )
        )
        if nested is None or nested in stack:
            continue
        child = value if section == "mapping" and isinstance(value, nested) else default_instance(nested)
        _walk(nested, child, f"{path}{child_prefix}", rows, (*stack, nested), fallback_docs)


def _type_text(tp: Any, bounds: Bounds | None) -> str:
    """The YAML type, with the range the decoder holds the value to: ``int, > 0``."""
    return f"{yaml_type(tp)}, {bounds.text()}" if bounds is not None else yaml_type(tp)


def _nested(tp: Any) -> tuple[type | None, Literal["", "mapping", "list", "map"], str]:
    """The dataclass whose keys nest under a field of type ``tp``, how, and the path glue."""
    if tp is None:
        return None, "", ""
    if is_dataclass_type(tp):
        return tp, "mapping", "."
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not Ellipsis]
    if origin in (list, tuple) and args:
        _, item = optional_args(args[0])
        if len(item) == 1 and is_dataclass_type(item[0]):
            return item[0], "list", "[]."
    if origin is dict and len(args) == 2:
        _, item = optional_args(args[1])
        if len(item) == 1 and is_dataclass_type(item[0]):
            return item[0], "map", ".<name>."
    return None, "", ""


# ---------------------------------------------------------------------------------------------------------------
# components


def _owning_module(factory: Any) -> str:
    """The module that lists ``factory`` in its ``factories`` (the one collector.components imports)."""
    starts = [getattr(factory.create, "__module__", None), factory.config_type.__module__]
    for start in starts:
        if not start:
            continue
        parts = start.split(".")
        for n in range(1, len(parts) + 1):
            name = ".".join(parts[:n])
            module = sys.modules.get(name)
            if module is not None and any(f is factory for f in getattr(module, "factories", ())):
                return name
    return str(factory.config_type.__module__)


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _readme(module_name: str) -> tuple[str, str | None, str]:
    """(module docstring, repo-relative README path or None, README text) for a component module."""
    module = importlib.import_module(module_name)
    file = Path(getattr(module, "__file__", "") or "")
    readme = file.parent / "README.md" if file.name == "__init__.py" else None
    if readme is None or not readme.is_file():
        return module.__doc__ or "", None, ""
    try:
        rel: str | None = readme.resolve().relative_to(_repo_root()).as_posix()
    except ValueError:
        rel = None
    return module.__doc__ or "", rel, readme.read_text(encoding="utf-8")


_KEY_HEADERS = ("key", "option", "setting", "field", "name")
_DOC_HEADERS = ("meaning", "description", "doc", "what it does", "purpose")


def _readme_key_docs(text: str) -> dict[str, str]:
    """Key path -> meaning from the README's option tables (``| key | default | meaning |``).

    A cell may name several keys (`` `tls.cert_file`, `.key_file` ``: a leading dot is relative to the
    previous key's parent).
    """
    docs: dict[str, str] = {}
    key_col = doc_col = -1
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            key_col = doc_col = -1
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", stripped.strip("|"))]
        if key_col < 0:
            lowered = [c.lower() for c in cells]
            if lowered and lowered[0] in _KEY_HEADERS:
                key_col = 0
                doc_col = next((i for i, c in enumerate(lowered) if c in _DOC_HEADERS), len(cells) - 1)
            continue
        if set(stripped) <= set("|-: ") or len(cells) <= max(key_col, doc_col):
            continue
        meaning = cells[doc_col].replace("\\|", "|")
        previous = ""
        for key in re.findall(r"`([^`]+)`", cells[key_col]):
            if key.startswith(".") and previous:
                parent = previous.rsplit(".", 1)[0] if "." in previous else ""
                key = parent + key if parent else key[1:]
            previous = key
            docs.setdefault(key, meaning)
    return docs


def _readme_summary(text: str) -> str:
    """The first prose paragraph of a README (after its title), skipping headings, tables, code and lists."""
    lines: list[str] = []
    fenced = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            fenced = not fenced
            if lines:
                break
            continue
        if fenced:
            continue
        if not stripped or stripped.startswith(("#", "|", "<", "- ", "* ", ">")):
            if lines:
                break
            continue
        lines.append(stripped)
    return " ".join(lines)


_LINK = re.compile(r"(\]\()([^)\s#]+)((?:#[^)\s]*)?\))")


def _rebase_links(text: str, folder: str) -> str:
    """Relative Markdown links of a README in ``folder`` (repo-relative), rewritten relative to docs/."""

    def repl(match: re.Match[str]) -> str:
        target = match.group(2)
        if "://" in target or target.startswith(("/", "mailto:")):
            return match.group(0)
        repo_path = posixpath.normpath(posixpath.join(folder, target))
        return match.group(1) + posixpath.relpath(repo_path, _DOCS_DIR) + match.group(3)

    return _LINK.sub(repl, text)


def _signals(kind: str, factory: Any) -> str:
    if kind == "extensions":
        return "not in pipelines (listed under `service.extensions`)"
    if kind == "connectors":
        routes = sorted(getattr(factory, "routes", ()), key=lambda r: (_SIGNAL_ORDER[r[0]], _SIGNAL_ORDER[r[1]]))
        return ", ".join(f"{a.value} → {b.value}" for a, b in routes) or NONE
    signals = sorted(getattr(factory, "signals", ()), key=lambda s: _SIGNAL_ORDER[s])
    return ", ".join(s.value for s in signals) or NONE


def component_docs(reg: Registry | None = None) -> list[ComponentDoc]:
    """One entry per component (aliases grouped), kinds in pipeline order, types alphabetical."""
    reg = registry() if reg is None else reg
    docs: list[ComponentDoc] = []
    for kind in KIND_ORDER:
        groups: dict[tuple[str, int], list[tuple[str, Any]]] = {}
        for type_name, factory in reg.kind(kind).items():
            module = _owning_module(factory)
            groups.setdefault((module, id(factory.config_type)), []).append((type_name, factory))
        entries: list[ComponentDoc] = []
        for (module, _), members in groups.items():
            factory = members[0][1]
            docstring, readme, readme_text = _readme(module)
            if readme is not None:
                readme_text = _rebase_links(readme_text, posixpath.dirname(readme))
            summary = _readme_summary(readme_text) or first_paragraph(docstring)
            rows = key_rows(factory.config_type, fallback_docs=_readme_key_docs(readme_text))
            entries.append(
                ComponentDoc(
                    kind=kind,
                    types=tuple(_alias_order(t for t, _ in members)),
                    module=module,
                    summary=summary,
                    readme=readme,
                    signals=_signals(kind, factory),
                    rows=tuple(rows),
                )
            )
        docs.extend(sorted(entries, key=lambda d: d.types[0]))
    return docs


def _alias_order(names: Iterable[str]) -> list[str]:
    # Upstream's current name first (otlp_grpc before otlp): the one with an underscore-qualified protocol wins.
    return sorted(names, key=lambda n: (-n.count("_"), n))


# ---------------------------------------------------------------------------------------------------------------
# markdown


def _cell(text: str) -> str:
    return text.replace("\n", " ").replace("|", "\\|")


def _anchor(kind: str, type_name: str) -> str:
    return f"{kind}-{type_name}".replace("_", "-").lower()


def _table(rows: Iterable[KeyRow]) -> Iterator[str]:
    yield "| key | type | default | description |"
    yield "|---|---|---|---|"
    for row in rows:
        yield (f"| `{_cell(row.path)}` | {_cell(row.yaml_type)} | {_cell(row.default)} | {_cell(row.doc)} |")


def _component_section(doc: ComponentDoc) -> Iterator[str]:
    yield f'<a id="{_anchor(doc.kind, doc.types[0])}"></a>'
    yield ""
    aliases = f" (alias: {', '.join(f'`{t}`' for t in doc.types[1:])})" if len(doc.types) > 1 else ""
    yield f"### `{doc.types[0]}`{aliases}"
    yield ""
    if doc.summary:
        yield doc.summary
        yield ""
    source = f"`{doc.module}`" + (f" · [README]({_relative_link(doc.readme)})" if doc.readme else "")
    yield f"Signals: {doc.signals}. Source: {source}."
    yield ""
    if doc.rows:
        yield from _table(doc.rows)
    else:
        yield "No keys: write `{}` or nothing after the id."
    yield ""


def _relative_link(repo_path: str) -> str:
    # Links are relative to docs/ so they work on GitHub and in a checkout.
    return posixpath.relpath(repo_path, _DOCS_DIR)


def _service_section() -> Iterator[str]:
    yield "## service"
    yield ""
    yield (
        "Which components run, and how they connect. A component configured above but not named here is not started."
    )
    yield ""
    rows = [
        KeyRow(
            "service.extensions",
            "list of component id",
            "`[]`",
            "Extensions to start (before any pipeline), e.g. `[health_check, file_storage]`.",
        ),
        KeyRow(
            "service.pipelines",
            "map of pipeline",
            "required",
            "At least one pipeline. Ids are `traces`, `metrics` or `logs`, optionally `/name` (`traces/backend`).",
            "map",
        ),
        KeyRow(
            "service.pipelines.<id>.receivers",
            "list of component id",
            "required",
            "Receivers (or connectors, as receivers) feeding this pipeline; at least one.",
        ),
        KeyRow(
            "service.pipelines.<id>.processors",
            "list of component id",
            "`[]`",
            "Processors, run in the order listed.",
        ),
        KeyRow(
            "service.pipelines.<id>.exporters",
            "list of component id",
            "required",
            "Exporters (or connectors, as exporters) the processed data fans out to; at least one.",
        ),
        KeyRow("service.telemetry", "mapping", "", "The collector's own metrics and logs.", "mapping"),
        *key_rows(TelemetryConfig, "service.telemetry."),
    ]
    yield from _table(rows)
    yield ""
    yield (
        "A component id is `type` or `type/name` (`otlp/tempo`); each id is configured once under its kind and "
        "may be used in several pipelines. A connector is an exporter in one pipeline and a receiver in another. "
        "Referencing an id that is not configured, a signal a component does not support, an unknown key, or a "
        "number outside the range its type column states is an error naming its path; "
        "`otel-metrics validate --config FILE` reports every problem at once."
    )
    yield ""


def _env_section() -> Iterator[str]:
    yield "## Environment variables: `${env:VAR}` and `${env:VAR:-default}`"
    yield ""
    yield (
        "Every string value in the file is expanded after YAML parsing (as the upstream Collector's `env` provider "
        "does), so expansion never changes the document's structure:"
    )
    yield ""
    yield "- `${env:VAR}` is replaced by the variable's value; the bare `${VAR}` form is accepted too."
    yield "- `${env:VAR:-default}` uses `default` when `VAR` is not set."
    yield (
        "- A value that is exactly one reference is re-read as a YAML scalar, so `port: ${env:PORT}` gives an int; "
        "a variable holding a mapping or list stays a string."
    )
    yield "- An unset variable without a default expands to an empty string, with a warning."
    yield "- `$$` is a literal `$`."
    yield ""
    yield "| written in YAML | environment | the component receives |"
    yield "|---|---|---|"
    for text, env, _ in ENV_EXAMPLES:
        tree, _warnings = expand_env({"key": text}, env)
        got = tree["key"]
        env_text = ", ".join(f"`{k}={v}`" for k, v in env.items()) or "(not set)"
        shown = json.dumps(got) if isinstance(got, str) else plain(got)
        yield f"| `{_cell(text)}` | {_cell(env_text)} | `{_cell(shown)}` ({yaml_type(type(got))}) |"
    yield ""


def render_reference(reg: Registry | None = None) -> str:
    """The whole reference as Markdown (deterministic: same code, same text)."""
    docs = component_docs(reg)
    out: list[str] = [
        "# Collector configuration reference",
        "",
        f"<!-- Generated from the code by `{COMMAND}`; do not edit by hand. -->",
        "",
        (
            "Every key the `otel-metrics` collector accepts, with its type as written in YAML and its default. The "
            "schema is the upstream OpenTelemetry Collector's: `receivers`, `processors`, `exporters`, "
            "`connectors` and `extensions` configure components by id, and `service` wires them into pipelines. "
            "Omitted keys keep the default shown; unknown keys are errors."
        ),
        "",
        (
            "Types: `duration` is a Go-style duration (`200ms`, `5s`, `1m30s`, `1h`) or a number of seconds; "
            '`one of "a"|"b"` lists the accepted values; `mapping` is a section whose keys follow it (dotted); '
            "`key[].sub` is a key of each item of a list of mappings. Defaults: `—` means unset (null); `on` marks "
            "an optional section present by default."
        ),
        "",
        "## Contents",
        "",
    ]
    for kind in KIND_ORDER:
        entries = [d for d in docs if d.kind == kind]
        links = ", ".join(f"[`{d.types[0]}`](#{_anchor(kind, d.types[0])})" for d in entries) or NONE
        out.append(f"- [{_KIND_TITLES[kind]}](#{kind}): {links}")
    out.append("- [service](#service)")
    out.append("- [Environment variables](#environment-variables-envvar-and-envvar-default)")
    out.append("")
    for kind in KIND_ORDER:
        out.append(f"## {_KIND_TITLES[kind]}")
        out.append("")
        entries = [d for d in docs if d.kind == kind]
        if not entries:
            out.append("None available.")
            out.append("")
        for doc in entries:
            out.extend(_component_section(doc))
    out.extend(_service_section())
    out.extend(_env_section())
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    # UTF-8 whatever the locale (the reference has "—" and "→"), so the redirected file is the same everywhere.
    sys.stdout.buffer.write(render_reference().encode("utf-8"))
