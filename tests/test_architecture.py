"""The import rules of docs/architecture.md, checked on the source: no import goes from a lower layer to a higher one.

Every import counts, module-level or inside a function, since a function-local import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = ("otel_metrics", "processors", "collector", "examples", "benchmarks", "tests")

# Rooms: what each may never import (docs/architecture.md, "Rooms").
FORBIDDEN_ROOMS = {
    "processors": ("collector", "otel_metrics", "examples", "benchmarks", "tests"),
    "otel_metrics": ("collector", "examples", "benchmarks", "tests"),
    "collector": ("otel_metrics", "examples", "benchmarks", "tests"),
}

# Inside processors: the OTLP facts and the component contract sit below every processor.
PROCESSORS_FLOOR = {
    "processors.pdata": ("processors.pdata",),
    "processors.pipeline": ("processors.pdata", "processors.pipeline"),
}

# Inside collector, bottom to top: a module may import its own layer and the layers below (longest prefix wins).
COLLECTOR_LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "contract and low-level homes",
        (
            "collector.component",
            "collector.confighttp",
            "collector.confmap",
        ),
    ),
    (
        "components",
        (
            "collector.receivers",
            "collector.exporters",
            "collector.connectors",
            "collector.extensions",
            "collector.analytics",
        ),
    ),
    ("assembly", ("collector.components", "collector.config", "collector.service", "collector.telemetry")),
    ("faces", ("collector.cli", "collector.__main__", "collector")),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every first-party import in ``path``; ``from pkg import sub`` names ``pkg.sub``
    when ``sub`` is a module."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if _is_module(f"{module}.{a.name}") else module for a in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in FIRST_PARTY:
                yield node.lineno, target


def _sources(*rooms: str) -> list[Path]:
    return sorted(p for room in rooms for p in (ROOT / room).rglob("*.py"))


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _layer(module: str) -> int:
    best, found = -1, -1
    for index, (_, prefixes) in enumerate(COLLECTOR_LAYERS):
        for prefix in prefixes:
            if _within(module, (prefix,)) and len(prefix) > best:
                best, found = len(prefix), index
    assert found >= 0, f"{module} is in no layer of COLLECTOR_LAYERS: add it (and to docs/architecture.md)"
    return found


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


@pytest.mark.parametrize("room", sorted(FORBIDDEN_ROOMS))
def test_rooms_import_only_rooms_below_them(room: str) -> None:
    wrong = [
        f"{_where(path, line)} imports {target}"
        for path in _sources(room)
        for line, target in imports(path)
        if _within(target, FORBIDDEN_ROOMS[room])
    ]
    assert not wrong, f"{room} may not import {', '.join(FORBIDDEN_ROOMS[room])}:\n" + "\n".join(wrong)


def test_otlp_facts_and_the_contract_sit_below_every_processor() -> None:
    wrong = []
    for path in _sources("processors"):
        module = _module_name(path)
        for floor, allowed in PROCESSORS_FLOOR.items():
            if _within(module, (floor,)):
                wrong += [
                    f"{_where(path, line)} imports {target}"
                    for line, target in imports(path)
                    if _within(target, ("processors",)) and not _within(target, allowed)
                ]
    assert not wrong, "processors.pdata and processors.pipeline import nothing above them:\n" + "\n".join(wrong)


def test_collector_layers_import_only_their_own_layer_or_lower() -> None:
    wrong = []
    for path in _sources("collector"):
        module = _module_name(path)
        layer = _layer(module)
        for line, target in imports(path):
            if _within(target, ("collector",)) and _layer(target) > layer:
                wrong.append(
                    f"{_where(path, line)}: {COLLECTOR_LAYERS[layer][0]} imports {target}"
                    f" ({COLLECTOR_LAYERS[_layer(target)][0]})"
                )
    assert not wrong, "an import from a lower layer to a higher one:\n" + "\n".join(wrong)


def _loading_import_lines(path: Path) -> set[int]:
    return _loading_import_lines_of(ast.parse(path.read_text(encoding="utf-8"), str(path)))


def _loading_import_lines_of(tree: ast.Module) -> set[int]:
    """Lines of the imports made when a module loads: at its top level (a top-level ``try`` counts: optional
    packages), not inside a function or class, nor under ``if TYPE_CHECKING``."""
    lines: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            lines.add(node.lineno)
        elif isinstance(node, ast.Try):
            lines |= {n.lineno for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)}
    return lines


@pytest.mark.parametrize("room", sorted(FORBIDDEN_ROOMS))
def test_first_party_imports_are_made_when_a_module_loads(room: str) -> None:
    """An import inside a function or under TYPE_CHECKING is how a circle between modules hides: none."""
    wrong = [
        f"{_where(path, line)} imports {target}"
        for path in _sources(room)
        for line, target in imports(path)
        if line not in _loading_import_lines(path)
    ]
    assert not wrong, "first-party imports belong at the top of the module:\n" + "\n".join(wrong)


def test_examples_use_no_private_module() -> None:
    wrong = [
        f"{_where(path, line)} imports {target}"
        for path in _sources("examples")
        for line, target in imports(path)
        if not target.startswith("examples.") and any(part.startswith("_") for part in target.split("."))
    ]
    assert not wrong, "examples show the public API only:\n" + "\n".join(wrong)


def test_the_rules_see_imports() -> None:
    """The checker itself: a relative import, a function-local one and ``from pkg import submodule`` all count."""
    local = ast.parse("def f() -> None:\n    from collector import telemetry\n")
    assert not _loading_import_lines_of(local)  # an import inside a function is no import made at load
    service = dict((t, line) for line, t in imports(ROOT / "collector/service/service.py"))
    assert "collector.telemetry" in service  # from collector import telemetry
    registry = {t for _, t in imports(ROOT / "collector/components.py")}
    assert "collector.exporters.postgres" in registry  # from collector.exporters import postgres
    debug = {t for _, t in imports(ROOT / "collector/exporters/debug/__init__.py")}
    assert "collector.exporters.debug.config" in debug  # from .config import ...
    assert _layer("collector.config.loader") > _layer("collector.receivers.otlp") > _layer("collector.confmap.sections")
