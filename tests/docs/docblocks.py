"""Fenced code blocks of the project's Markdown, and the checks docs/README-testing.md describes.

Imported as ``tests.docs.docblocks`` by the tests in this folder and by tests/e2e.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
# `# test: run`, `# test: skip (needs a running server)`; or `<!-- test: skip -->` on the line before the fence.
_MARKER = re.compile(r"^\s*(?:#|//|<!--)\s*test:\s*(?P<marker>[a-z-]+)\b(?P<reason>.*?)(?:-->)?\s*$")
_LANG_ALIASES = {
    "py": "python",
    "python3": "python",
    "sh": "bash",
    "shell": "bash",
    "shell-session": "console",
    "pycon": "pycon",
    "yml": "yaml",
}


@dataclass(frozen=True)
class Block:
    file: Path
    line: int  # 1-based line of the opening fence
    lang: str  # normalised: python, bash, yaml, ... ("" when untagged)
    code: str
    marker: str = ""  # "run", "skip", ... from a `# test: <marker>` comment
    reason: str = ""

    @property
    def where(self) -> str:
        try:
            name = self.file.resolve().relative_to(REPO).as_posix()
        except ValueError:
            name = str(self.file)
        return f"{name}:{self.line}"


class FenceError(ValueError):
    """A fence that is never closed: everything after it would silently become code."""


def parse_blocks(text: str, file: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        fence, indent = match.group("fence"), len(match.group("indent"))
        info = match.group("info").strip()
        lang = info.split()[0].lower() if info else ""
        lang = _LANG_ALIASES.get(lang, lang)
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                break
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i].lstrip())
            i += 1
        else:
            raise FenceError(f"{file}:{start + 1}: code fence {fence!r} is never closed")
        marker, reason = _marker(body[0] if body else "")
        if not marker and start > 0:
            marker, reason = _marker(lines[start - 1]) if lines[start - 1].strip().startswith("<!--") else ("", "")
        blocks.append(Block(file, start + 1, lang, "\n".join(body) + "\n", marker, reason))
        i += 1
    return blocks


def _marker(line: str) -> tuple[str, str]:
    match = _MARKER.match(line)
    if match is None:
        return "", ""
    return match.group("marker"), match.group("reason").strip(" :-()")


def doc_files() -> list[Path]:
    """README.md and docs/*.md: the Markdown a user reads."""
    files = [REPO / "README.md"] if (REPO / "README.md").is_file() else []
    return files + sorted((REPO / "docs").glob("*.md"))


def all_blocks(files: list[Path] | None = None) -> list[Block]:
    found: list[Block] = []
    for file in doc_files() if files is None else files:
        found.extend(parse_blocks(file.read_text(encoding="utf-8"), file))
    return found


# --- bash blocks ---------------------------------------------------------------------------------------------


def shell_commands(code: str, prompts_only: bool = False) -> Iterator[list[str]]:
    """Simple commands (word lists) of a shell snippet: continuation lines joined, comments and `$ ` prompts
    dropped, split on ``&&``, ``||``, ``;``, ``|`` and ``&``. ``prompts_only`` (```console blocks): only lines
    starting with `$ ` are commands, the rest is their output."""
    joined = re.sub(r"\\\n", " ", code)
    for raw in joined.splitlines():
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        elif prompts_only:
            continue
        if not line or line.startswith("#"):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError:  # unbalanced quotes (a heredoc line, say): words are still worth checking
            tokens = line.split("#", 1)[0].split()
        current: list[str] = []
        for token in tokens:
            if token and set(token) <= set(";&|"):
                if current:
                    yield current
                current = []
            else:
                current.append(token)
        if current:
            yield current


def _is_placeholder(word: str) -> bool:
    return word.startswith(("<", "{", "[", "$")) or word in ("...", "…")


def check_otel_metrics(words: list[str], root: Any) -> str | None:
    """Problem with an ``otel-metrics a b ...`` command line (``words`` after the program), or None."""
    group = root
    path = ["otel-metrics"]
    for word in words:
        if word.startswith("-") or _is_placeholder(word):
            return None
        commands = getattr(group, "commands", None)
        if commands is None:  # a leaf command: the rest are its arguments
            return None
        if word not in commands:
            known = ", ".join(sorted(commands))
            return f"`{' '.join(path)} {word}`: no such command (known: {known})"
        group = commands[word]
        path.append(word)
    return None


def check_command(words: list[str], cli_root: Any) -> list[str]:
    """What is wrong with one simple command of a bash block (empty when it refers only to real things)."""
    problems: list[str] = []
    rest = list(words)
    while rest and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", rest[0]):  # VAR=value prefixes
        rest.pop(0)
    if not rest:
        return problems
    program = Path(rest[0]).name
    if program == "otel-metrics":
        problem = check_otel_metrics(rest[1:], cli_root)
        if problem:
            problems.append(problem)
    for i, word in enumerate(rest[:-1]):
        if re.fullmatch(r"python(3(\.\d+)?)?", Path(word).name) and rest[i + 1] == "-m" and i + 2 < len(rest):
            module = rest[i + 2]
            if not _is_placeholder(module) and importlib.util.find_spec(module) is None:
                problems.append(f"`python -m {module}`: no such module")
    is_python = re.fullmatch(r"python(3(\.\d+)?)?", program) is not None
    if (program in ("bash", "sh") or is_python) and len(rest) > 1:
        target = rest[1]
        runs_file = not target.startswith("-") and not _is_placeholder(target)
        if runs_file and (not is_python or target.endswith(".py")):
            script = Path(target)
            if not (script if script.is_absolute() else REPO / script).exists():
                problems.append(f"`{program} {target}`: no such file (relative to the repository root)")
    return problems


def looks_like_collector_config(data: Any) -> bool:
    return isinstance(data, dict) and "service" in data
