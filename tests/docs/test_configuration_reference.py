"""docs/configuration.md is generated from the components' config dataclasses and must match the code."""

from __future__ import annotations

import difflib
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from collector.component import ExporterFactory
from collector.components import Registry, registry
from collector.config.model import TelemetryConfig
from collector.config.reference import (
    COMMAND,
    ENV_EXAMPLES,
    KIND_ORDER,
    ComponentDoc,
    KeyRow,
    _readme_key_docs,
    _readme_summary,
    _rebase_links,
    component_docs,
    format_duration,
    key_rows,
    render_reference,
)
from collector.confmap.decode import parse_duration
from collector.confmap.expand import expand_env
from processors.pipeline import ComponentID, Duration
from tests.docs.docblocks import REPO, all_blocks

DOC = REPO / "docs" / "configuration.md"


@pytest.fixture(scope="module")
def rendered() -> str:
    return render_reference()


@pytest.fixture(scope="module")
def docs() -> list[ComponentDoc]:
    return component_docs()


def _sections(markdown: str) -> dict[tuple[str, str], str]:
    """(kind, component type) -> the text of its section, aliases included, from the rendered Markdown."""
    kinds = {k.capitalize(): k for k in KIND_ORDER}
    sections: dict[tuple[str, str], str] = {}
    kind = ""
    names: list[str] = []
    lines: list[str] = []

    def flush() -> None:
        for name in names:
            sections[(kind, name)] = "\n".join(lines)

    for line in markdown.splitlines():
        if line.startswith("## ") or line.startswith("### "):
            flush()
            names, lines = [], []
            if line.startswith("## "):
                kind = kinds.get(line[3:].strip(), line[3:].strip())
            else:
                names = line.split("`")[1::2]  # ### `otlp_grpc` (alias: `otlp`)
        lines.append(line)
    flush()
    return sections


# --- the committed file -----------------------------------------------------------------------------------------


def test_committed_reference_matches_the_code(rendered: str) -> None:
    committed = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
    if committed != rendered:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    rendered.splitlines(keepends=True),
                    "docs/configuration.md (committed)",
                    "render_reference()",
                    n=1,
                )
            )[:60]
        )
        pytest.fail(f"docs/configuration.md is out of date; regenerate it with:\n    {COMMAND}\n\n{diff}")


def test_the_documented_command_prints_the_reference(rendered: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "collector.config.reference"],
        cwd=REPO,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == rendered


def test_every_registered_component_is_documented(rendered: str) -> None:
    sections = _sections(rendered)
    committed = _sections(DOC.read_text(encoding="utf-8")) if DOC.is_file() else {}
    reg = registry()
    missing = [
        f"{kind}.{type_}"
        for kind in KIND_ORDER
        for type_ in reg.kind(kind)
        if (kind, type_) not in sections or (kind, type_) not in committed
    ]
    assert not missing, f"not in the reference (regenerate with `{COMMAND}`): {missing}"
    for kind in KIND_ORDER:
        for type_, factory in reg.kind(kind).items():
            for row in key_rows(factory.config_type):
                assert f"| `{row.path}` |" in sections[(kind, type_)], f"{kind}.{type_}: key {row.path} missing"


# --- sample configs: every key they use is in the reference -------------------------------------------------------


def _sample_configs() -> list[Any]:
    samples: list[Any] = []
    root_config = REPO / "otel-collector.yaml"
    if root_config.is_file():
        samples.append(pytest.param(root_config.read_text(encoding="utf-8"), id="otel-collector.yaml"))
    readmes = sorted((REPO / "collector").glob("**/README.md")) + sorted((REPO / "processors").glob("**/README.md"))
    for block in all_blocks(readmes) + all_blocks():
        if block.lang != "yaml" or block.marker == "skip":
            continue
        try:
            data = yaml.safe_load(block.code)
        except yaml.YAMLError:
            continue  # test_readme_blocks reports YAML that does not parse
        if isinstance(data, dict) and set(data) & {*KIND_ORDER, "service"}:
            samples.append(pytest.param(block.code, id=block.where))
    return samples


def _walk(value: Any, prefix: str, rows: dict[str, KeyRow], where: str, problems: list[str]) -> None:
    if not isinstance(value, dict):
        return
    for key, child in value.items():
        path = f"{prefix}{key}"
        row = rows.get(path)
        if row is None:
            problems.append(f"{where}: `{path}` is not in the reference")
            continue
        if row.section == "mapping":
            _walk(child, f"{path}.", rows, where, problems)
        elif row.section == "list" and isinstance(child, list):
            for item in child:
                _walk(item, f"{path}[].", rows, where, problems)
        elif row.section == "map" and isinstance(child, dict):
            for item in child.values():
                _walk(item, f"{path}.<name>.", rows, where, problems)


@pytest.mark.parametrize("text", _sample_configs())
def test_every_key_of_a_sample_config_is_documented(text: str, rendered: str, docs: list[ComponentDoc]) -> None:
    data = yaml.safe_load(text) or {}
    sections = _sections(rendered)
    by_type = {(d.kind, t): d for d in docs for t in d.types}
    problems: list[str] = []
    for kind in KIND_ORDER:
        for id_text, body in (data.get(kind) or {}).items():
            type_ = ComponentID.parse(str(id_text)).type
            doc = by_type.get((kind, type_))
            if doc is None:
                problems.append(f"{kind}.{id_text}: component type {type_!r} is not in the reference")
                continue
            rows = {r.path: r for r in doc.rows}
            _walk(body, "", rows, f"{kind}.{id_text}", problems)
            section = sections[(kind, type_)]
            problems.extend(
                f"{kind}.{id_text}: `{path}` is not in its section of the Markdown"
                for path in _paths(body, "", rows)
                if f"| `{path}` |" not in section
            )
    service_rows = {r.path: r for r in key_rows(TelemetryConfig, "service.telemetry.")}
    service = data.get("service") or {}
    for key in service:
        if key not in ("extensions", "pipelines", "telemetry"):
            problems.append(f"service.{key} is not in the reference")
    _walk(service.get("telemetry"), "service.telemetry.", service_rows, "service.telemetry", problems)
    for pid, pipeline in (service.get("pipelines") or {}).items():
        for key in pipeline or {}:
            if f"| `service.pipelines.<id>.{key}` |" not in rendered:
                problems.append(f"service.pipelines.{pid}.{key} is not in the reference")
    assert not problems, "\n".join(problems)


def _paths(value: Any, prefix: str, rows: dict[str, KeyRow]) -> list[str]:
    found: list[str] = []
    if not isinstance(value, dict):
        return found
    for key, child in value.items():
        path = f"{prefix}{key}"
        row = rows.get(path)
        if row is None:
            continue
        found.append(path)
        if row.section == "mapping":
            found.extend(_paths(child, f"{path}.", rows))
        elif row.section == "list" and isinstance(child, list):
            for item in child:
                found.extend(_paths(item, f"{path}[].", rows))
    return found


# --- how keys, types, defaults and docs are read ----------------------------------------------------------------


@dataclass
class _Inner:
    """Inner section summary.

    Not this paragraph."""

    depth: int = 3


_ITEM_WAIT = Duration(5.0)
# Why the limit is ten.
_SAMPLE_LIMIT = 10


@dataclass
class _Item:
    name: str = ""
    wait: Duration = _ITEM_WAIT


@dataclass
class _Sample:
    # A comment above,
    # on two lines.
    above: str = "x"
    trailing: int = 1  # a trailing comment
    attr_doc: bool = False
    """An attribute docstring."""
    meta: Duration = field(default=Duration(0.2), metadata={"doc": "From metadata."})  # loses to metadata
    pragma_only: float = 1.5  # pragma: no cover
    kind: Literal["a", "b"] = "a"
    inner: _Inner = field(default_factory=_Inner)
    maybe: _Inner | None = None
    items: list[_Item] = field(default_factory=list)
    by_name: dict[str, _Item] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=lambda: {"a": 1})
    waits: list[Duration] = field(default_factory=lambda: [Duration(300.0), Duration(0.05)])
    text_or_none: str | None = None
    number_or_text: float | str = 2
    from_constant: int = _SAMPLE_LIMIT
    maybe_wait: Duration | None = _ITEM_WAIT
    preset: list[_Item] = field(default_factory=lambda: [_Item(name="a"), _Item(name="b", wait=Duration(60.0))])


def test_key_rows_read_types_defaults_and_every_doc_convention() -> None:
    rows = {r.path: (r.yaml_type, r.default, r.doc) for r in key_rows(_Sample)}
    assert rows == {
        "above": ("string", "`x`", "A comment above, on two lines."),
        "trailing": ("int", "`1`", "a trailing comment"),
        "attr_doc": ("bool", "`false`", "An attribute docstring."),
        "meta": ("duration", "`200ms`", "From metadata."),
        "pragma_only": ("float", "`1.5`", ""),
        "kind": ('one of "a"|"b"', "`a`", ""),
        "inner": ("mapping", "", "Inner section summary."),
        "inner.depth": ("int", "`3`", ""),
        "maybe": ("mapping", "—", "Inner section summary."),
        "maybe.depth": ("int", "`3`", ""),
        "items": ("list of mapping", "`[]`", ""),
        "items[].name": ("string", '`""`', ""),
        "items[].wait": ("duration", "`5s`", ""),
        "by_name": ("map of mapping", "`{}`", ""),
        "by_name.<name>.name": ("string", '`""`', ""),
        "by_name.<name>.wait": ("duration", "`5s`", ""),
        "limits": ("map of int", '`{"a": 1}`', ""),
        "waits": ("list of duration", '`["5m", "50ms"]`', ""),
        "text_or_none": ("string", "—", ""),
        "number_or_text": ("float or string", "`2`", ""),
        "from_constant": ("int", "`10`", "Why the limit is ten."),
        "maybe_wait": ("duration", "`5s`", ""),
        # list items show only what differs from the item type's defaults
        "preset": ("list of mapping", '`[{"name": "a"}, {"name": "b", "wait": "1m"}]`', ""),
        "preset[].name": ("string", '`""`', ""),
        "preset[].wait": ("duration", "`5s`", ""),
    }
    sections = {r.path: r.section for r in key_rows(_Sample) if r.section}
    assert sections == {"inner": "mapping", "maybe": "mapping", "items": "list", "by_name": "map", "preset": "list"}


def test_readme_docs_fill_only_keys_the_code_leaves_undocumented() -> None:
    readme = "\n".join(
        [
            "# sample component",
            "",
            "Does sample things.",
            "",
            "| key | default | meaning |",
            "|---|---|---|",
            "| `above` | `x` | loses to the code's comment |",
            "| `pragma_only`, `.from_constant` | | from the README, with a \\| pipe |",
            "| `items[].name` | | each item's name |",
        ]
    )
    assert _readme_summary(readme) == "Does sample things."
    fallback = _readme_key_docs(readme)
    rows = {r.path: r.doc for r in key_rows(_Sample, fallback_docs=fallback)}
    assert rows["above"] == "A comment above, on two lines."
    assert rows["pragma_only"] == "from the README, with a | pipe"
    assert rows["from_constant"] == "from the README, with a | pipe"  # the README wins over a constant's comment
    assert rows["items[].name"] == "each item's name"


def test_readme_links_are_rebased_onto_docs() -> None:
    text = (
        "See [schema](../../../docs/schema.md#spans), [peer](../otlp/README.md), [web](https://x.io/a), [here](#keys)."
    )
    assert _rebase_links(text, "collector/exporters/postgres") == (
        "See [schema](schema.md#spans), [peer](../collector/exporters/otlp/README.md), [web](https://x.io/a), "
        "[here](#keys)."
    )


def test_links_in_the_reference_resolve(rendered: str) -> None:
    import re

    broken = [
        target
        for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", rendered)
        if "://" not in target and not (DOC.parent / target).exists()
    ]
    assert not broken, f"links in docs/configuration.md that point nowhere: {broken}"


def test_optional_section_present_by_default_is_marked_on() -> None:
    @dataclass
    class WithDefaultSection:
        section: _Inner | None = field(default_factory=lambda: _Inner(depth=7))

    rows = {r.path: r.default for r in key_rows(WithDefaultSection)}
    assert rows == {"section": "on", "section.depth": "`7`"}  # the default instance's value, not the class's


def test_aliases_are_one_entry_with_the_current_name_first() -> None:
    def create(settings: Any, config: Any) -> Any:
        raise AssertionError("not called")

    reg = Registry(
        receivers={},
        processors={},
        exporters={
            "otlp": ExporterFactory(type="otlp", config_type=_Sample, create=create),
            "otlp_grpc": ExporterFactory(type="otlp_grpc", config_type=_Sample, create=create),
            "other": ExporterFactory(type="other", config_type=_Inner, create=create),
        },
        connectors={},
        extensions={},
    )
    entries = [d for d in component_docs(reg) if d.kind == "exporters"]
    assert [d.types for d in entries] == [("other",), ("otlp_grpc", "otlp")]
    markdown = render_reference(reg)
    assert "### `otlp_grpc` (alias: `otlp`)" in markdown
    assert markdown.count("### `otlp") == 1


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.2, "200ms"),
        (5, "5s"),
        (300, "5m"),
        (90, "1m30s"),
        (3600, "1h"),
        (5400.5, "1h30m0.5s"),
        (0.0015, "1.5ms"),
        (1e-6, "1us"),
        (-2, "-2s"),
        (1e-12, "0s"),
    ],
)
def test_format_duration_examples(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**15))
def test_format_duration_round_trips_through_the_decoder(nanoseconds: int) -> None:
    seconds = nanoseconds / 1e9
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(("text", "env", "expected"), ENV_EXAMPLES)
def test_env_examples_are_what_expansion_does(text: str, env: dict[str, str], expected: Any) -> None:
    tree, _ = expand_env({"key": text}, env)
    assert tree["key"] == expected
    assert type(tree["key"]) is type(expected)


def test_reference_has_service_and_env_sections(rendered: str) -> None:
    for needle in (
        "## service",
        "| `service.telemetry.metrics.address` |",
        "| `service.extensions` |",
        "| `service.pipelines.<id>.processors` |",
        "`${env:VAR:-default}`",
    ):
        assert needle in rendered
