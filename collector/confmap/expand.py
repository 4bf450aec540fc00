"""``${env:VAR}`` and ``${env:VAR:-default}`` expansion, as the upstream Collector's env provider does.

Expansion runs on the parsed YAML tree, so it never changes the document's structure. A scalar that is
exactly one reference is re-read as YAML (``port: ${env:PORT}`` yields an int), as upstream does; ``$$`` is
a literal ``$``. An unset variable without a default expands to the empty string with a warning (upstream's
behaviour).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ["expand_env"]

# ${env:NAME} or ${env:NAME:-default}; the bare ${NAME} form is accepted too (older upstream configs use it).
_REF = re.compile(r"\$\$|\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute(text: str, path: str, env: Mapping[str, str], warnings: list[str]) -> str:
    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        warnings.append(f"{path}: environment variable {name!r} is not set; expanded to an empty string")
        return ""

    return _REF.sub(repl, text)


def _expand_scalar(text: str, path: str, env: Mapping[str, str], warnings: list[str]) -> Any:
    match = _REF.fullmatch(text)
    value = _substitute(text, path, env, warnings)
    if match is None or match.group(0) == "$$":
        return value
    try:
        parsed = yaml.safe_load(value) if value else value
    except yaml.YAMLError:
        return value
    # Only scalars are re-typed; a variable holding YAML structure stays a string (no injection of mappings).
    return parsed if isinstance(parsed, int | float | bool | str) else value


def expand_env(node: Any, env: Mapping[str, str] | None = None, path: str = "") -> tuple[Any, list[str]]:
    """Return the tree with every string expanded, and the warnings for unset variables."""
    environ = os.environ if env is None else env
    warnings: list[str] = []

    def walk(value: Any, where: str) -> Any:
        if isinstance(value, str):
            return _expand_scalar(value, where, environ, warnings) if "$" in value else value
        if isinstance(value, dict):
            return {k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    return walk(node, path), warnings
