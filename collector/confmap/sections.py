"""Reading a collector config file, and decoding one component's section of it.

The config loader builds a whole ``Config`` from these. A command that needs one component's settings (the
``postgres`` exporter's database for ``otel-metrics db``, the ``analytics`` extension's for ``otel-metrics api``)
reads that section through ``component_config``: the same YAML errors (``file:line:col``), ``${env:…}``
expansion, strict decoding and ``validate()`` as ``otel-metrics run``, without requiring the rest of the file to
be a runnable collector. Nothing here knows the components: callers name the config dataclass.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from collector.confmap.decode import decode
from collector.confmap.expand import expand_env
from collector.confmap.locate import key_marks, locate
from processors.pipeline import ComponentID

__all__ = ["ConfigError", "component_config", "decode_section", "read_yaml"]

_T = TypeVar("_T")


class ConfigError(ValueError):
    """Every problem found in a config; ``errors`` holds one ``"path: message"`` line each."""

    def __init__(self, errors: list[str], source: str = "config") -> None:
        self.errors = list(errors)
        self.source = source
        super().__init__(f"{source}: {len(errors)} error(s):\n" + "\n".join(f"  - {e}" for e in errors))


def read_yaml(path: str | os.PathLike[str]) -> tuple[Any, str]:
    """The parsed document and its text; ConfigError naming ``file:line:col`` for a syntax error."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read config file: {exc.strerror or exc}"], source) from exc
    try:
        return yaml.safe_load(text), text
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError([f"{where}: YAML syntax error: {exc.problem or exc}"], source) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: YAML error: {exc}"], source) from exc


def decode_section(config_type: type[_T], body: Any, path: str, errors: list[str]) -> _T:
    """``body`` (already expanded) decoded into ``config_type``; decoding and ``validate()`` problems are appended
    to ``errors``, each prefixed with ``path``."""
    config: _T = decode(config_type, body, path, errors)
    validate = getattr(config, "validate", None)  # optional on a config dataclass, as upstream's Validate
    if callable(validate):
        problems = validate() or []
        errors.extend(p if p.startswith(path) else f"{path}: {p}" for p in problems)
    return config


def component_config(
    path: str | os.PathLike[str],
    kind: str,
    type_name: str,
    config_type: type[_T],
    id: str | None = None,
    env: Mapping[str, str] | None = None,
) -> _T | None:
    """The config of the first ``kind`` component of type ``type_name`` in the file (or of the one with id
    ``id``), decoded into ``config_type``; None if the file has none. ConfigError lists every problem."""
    source = str(path)
    raw, text = read_yaml(path)
    section = (raw or {}).get(kind) if isinstance(raw, dict) else None
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError([f"{kind}: expected a mapping of component ids, got {type(section).__name__}"], source)
    for key, body in section.items():
        try:
            cid = ComponentID.parse(str(key))
        except ValueError:
            continue  # not this component's problem: `otel-metrics run` reports it
        if cid.type != type_name or (id is not None and str(cid) != id):
            continue
        where = f"{kind}.{key}"
        expanded, _ = expand_env(body, env, where)
        errors: list[str] = []
        config = decode_section(config_type, expanded, where, errors)
        if errors:
            marks = key_marks(text)
            raise ConfigError([locate(e, marks, source) for e in errors], source)
        return config
    return None
