"""The code blocks in README.md and docs/*.md work as shown.

Rules (also in docs/README-testing.md). A block's first line may be a marker comment `# test: <marker> [reason]`
(or `<!-- test: <marker> -->` on the line before the fence):
- ```python blocks run in a subprocess from the repository root with OTEL_SDK_DISABLED=true and a timeout; they
  must exit 0. A block of `>>>` lines (or ```pycon) runs as a doctest: the output shown must match.
  `# test: skip <reason>` opts out (say why).
- ```yaml blocks must parse. In README.md, a yaml block with a top-level `service:` is a whole collector config and
  must pass the collector's validator (`load_config`, what `otel-metrics validate` runs) with an empty environment,
  so `${env:VAR:-default}` takes its default.
- ```bash blocks are run (bash -euo pipefail, repository root, timeout) only when the first line is `# test: run`.
  Otherwise they are checked, not run: every `otel-metrics <command> [<subcommand>]` must be a real command of
  the Typer app `collector.cli.app`, every `python -m <module>` must be importable (importlib.util.find_spec),
  and every `bash <script>` / `python <file>.py` must exist. `<placeholders>` and `$VARS` are not checked.
  ```console blocks are checked the same way, never run; only their `$ `-prompted lines are commands (the rest
  is output).
- Any block marked `# test: skip` is not checked at all.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from collector.config.loader import load_config
from collector.confmap import ConfigError
from tests.docs.docblocks import (
    REPO,
    Block,
    FenceError,
    all_blocks,
    check_command,
    looks_like_collector_config,
    parse_blocks,
    shell_commands,
)

PYTHON_TIMEOUT_S = 30
BASH_TIMEOUT_S = 60

try:
    BLOCKS = all_blocks()
    FENCE_ERROR = ""
except FenceError as exc:
    BLOCKS, FENCE_ERROR = [], str(exc)


def _select(*langs: str, readme_only: bool = False) -> list[Any]:
    chosen = [
        b for b in BLOCKS if b.lang in langs and b.marker != "skip" and (not readme_only or b.file.name == "README.md")
    ]
    return [pytest.param(b, id=f"{b.where}-{b.lang}") for b in chosen]


@pytest.fixture(scope="module")
def cli_root() -> Any:
    from collector.cli import app

    return typer.main.get_command(app)


def test_every_fence_is_closed() -> None:
    assert not FENCE_ERROR, FENCE_ERROR


def test_readme_blocks_are_found() -> None:
    # The README has had a bash block since its first version; finding none means the extractor broke.
    assert any(b.file.name == "README.md" and b.lang == "bash" for b in BLOCKS)


def _is_doctest(block: Block) -> bool:
    return block.lang == "pycon" or any(line.startswith(">>> ") for line in block.code.splitlines())


@pytest.mark.parametrize("block", _select("python", "pycon"))
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    env = {**os.environ, "OTEL_SDK_DISABLED": "true"}
    if _is_doctest(block):  # `>>>` sessions: the shown output must be what the code prints
        script = tmp_path / "block.txt"
        command = [sys.executable, "-m", "doctest", "-o", "ELLIPSIS", "-o", "NORMALIZE_WHITESPACE", str(script)]
    else:
        script = tmp_path / "block.py"
        command = [sys.executable, str(script)]
    script.write_text(block.code, encoding="utf-8")
    try:
        done = subprocess.run(
            command,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=PYTHON_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.where}: python block still running after {PYTHON_TIMEOUT_S}s")
    output = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, f"{block.where}: python block exited {done.returncode}:\n{output}"


@pytest.mark.parametrize("block", _select("yaml"))
def test_yaml_block_parses(block: Block) -> None:
    try:
        yaml.safe_load(block.code)
    except yaml.YAMLError as exc:
        pytest.fail(f"{block.where}: not valid YAML: {exc}")


@pytest.mark.parametrize("block", _select("yaml", readme_only=True))
def test_readme_collector_config_validates(block: Block, tmp_path: Path) -> None:
    data = yaml.safe_load(block.code)
    if not looks_like_collector_config(data):
        pytest.skip("not a whole collector config (no top-level service:)")
    path = tmp_path / "otel-collector.yaml"
    path.write_text(block.code, encoding="utf-8")
    try:
        load_config(path, env={})
    except ConfigError as exc:
        pytest.fail(f"{block.where}: collector config does not validate:\n{exc}")


@pytest.mark.parametrize("block", _select("bash", "console"))
def test_bash_block(block: Block, cli_root: Any) -> None:
    if block.marker == "run" and block.lang == "bash":
        try:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block.code],
                cwd=REPO,
                env={**os.environ, "OTEL_SDK_DISABLED": "true"},
                capture_output=True,
                text=True,
                timeout=BASH_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{block.where}: bash block still running after {BASH_TIMEOUT_S}s")
        assert done.returncode == 0, f"{block.where}: bash block exited {done.returncode}:\n{done.stderr[-3000:]}"
        return
    commands = shell_commands(block.code, prompts_only=block.lang == "console")
    problems = [p for words in commands for p in check_command(words, cli_root)]
    assert not problems, f"{block.where}:\n" + "\n".join(problems)


# --- the helpers themselves -----------------------------------------------------------------------------------


def test_parse_blocks_languages_markers_and_indentation() -> None:
    text = "\n".join(
        [
            "# Title",
            "```py",
            "# test: skip needs a network",
            "print(1)",
            "```",
            "- a list item:",
            "  ```yml",
            "  a: 1",
            "  ```",
            "<!-- test: run -->",
            "~~~~sh",
            "```",
            "echo nested fence",
            "~~~~",
        ]
    )
    blocks = parse_blocks(text, REPO / "x.md")
    assert [(b.lang, b.line, b.marker) for b in blocks] == [("python", 2, "skip"), ("yaml", 7, ""), ("bash", 11, "run")]
    assert blocks[0].reason == "needs a network"
    assert blocks[1].code == "a: 1\n"
    assert blocks[2].code == "```\necho nested fence\n"


def test_unclosed_fence_is_an_error() -> None:
    with pytest.raises(FenceError, match=r"x\.md:2"):
        parse_blocks("text\n```python\nprint(1)\n", REPO / "x.md")


def test_shell_commands_split_on_operators_and_drop_comments() -> None:
    code = "$ FOO=1 otel-metrics db migrate && python -m collector --help  # run it\necho a \\\n  b | wc -l\n"
    assert list(shell_commands(code)) == [
        ["FOO=1", "otel-metrics", "db", "migrate"],
        ["python", "-m", "collector", "--help"],
        ["echo", "a", "b"],
        ["wc", "-l"],
    ]


def test_console_blocks_take_only_prompted_lines_as_commands() -> None:
    code = "$ otel-metrics validate --config otel-collector.yaml\nbash: output that is not a command\n"
    assert list(shell_commands(code, prompts_only=True)) == [
        ["otel-metrics", "validate", "--config", "otel-collector.yaml"]
    ]


def test_check_command_accepts_real_commands(cli_root: Any) -> None:
    for line in (
        "otel-metrics validate --config otel-collector.yaml",
        "otel-metrics db migrate",
        "otel-metrics <command> --help",
        ".venv/bin/python -m collector.config.reference",
        "bash scripts/demo",
        "python3 -c 'print(1)'",
    ):
        (words,) = shell_commands(line)
        assert check_command(words, cli_root) == [], line


def test_check_command_rejects_what_does_not_exist(cli_root: Any) -> None:
    cases = {
        "otel-metrics valdiate --config x.yaml": "otel-metrics valdiate",
        "otel-metrics db migrat": "otel-metrics db migrat",
        "python3 -m collector.no_such_module": "no such module",
        "bash scripts/no-such-script": "no such file",
        "python benchmarks/no_such_benchmark.py --quick": "no such file",
    }
    for line, expected in cases.items():
        (words,) = shell_commands(line)
        problems = check_command(words, cli_root)
        assert len(problems) == 1 and expected in problems[0], (line, problems)
