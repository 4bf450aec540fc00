"""deploy/compose.yaml works as written (no Docker here): every otel-metrics command it runs parses against the
real CLI, the files it mounts exist, and it ships no default password nor a database reachable from outside."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from typer.core import TyperGroup
from typer.testing import CliRunner

from collector.cli import app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
# ${VAR:?message}: compose refuses to start without VAR; ${VAR} / ${VAR:-default} would run with a default or empty.
_REQUIRED = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*:\?[^}]+\}$")


def _dockerfile_defaults() -> tuple[list[str], list[str]]:
    text = (DEPLOY / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M)
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert entrypoint and cmd, "the Dockerfile's ENTRYPOINT and CMD are exec-form JSON arrays"
    return yaml.safe_load(entrypoint.group(1)), yaml.safe_load(cmd.group(1))


def _commands() -> dict[str, Any]:
    """The real CLI's commands (click commands, as Typer builds them for `otel-metrics`)."""
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    return dict(group.commands)


def _our_services() -> dict[str, list[str]]:
    """Each service built from deploy/Dockerfile -> the otel-metrics arguments it runs."""
    entrypoint, default_cmd = _dockerfile_defaults()
    assert entrypoint == ["otel-metrics"]
    services = {}
    for name, service in COMPOSE["services"].items():
        build = service.get("build") or {}
        if build.get("dockerfile") == "deploy/Dockerfile":
            command = service.get("command", default_cmd)
            services[name] = shlex.split(command) if isinstance(command, str) else list(command)
    return services


def test_compose_runs_our_image_in_three_services() -> None:
    assert set(_our_services()) == {"sink-1", "sink-2", "analytics"}


@pytest.mark.parametrize("service", sorted(_our_services()))
def test_each_command_parses_against_the_real_cli(service: str) -> None:
    args = _our_services()[service]
    command = _commands().get(args[0])
    assert command is not None, f"{service}: otel-metrics has no command {args[0]!r}"
    # Parsing only (what the real CLI does before running): an unknown option or a missing value is a UsageError.
    try:
        command.make_context(args[0], args[1:])
    except Exception as exc:
        pytest.fail(f"{service}: `otel-metrics {shlex.join(args)}`: {type(exc).__name__}: {exc}")
    result = CliRunner().invoke(app, [args[0], "--help"])
    assert result.exit_code == 0, result.output
    for option in (a.split("=", 1)[0] for a in args[1:] if a.startswith("--")):
        assert option in result.output, f"{service}: {option} is not in `otel-metrics {args[0]} --help`"


def test_an_unknown_option_would_be_caught() -> None:
    with pytest.raises(Exception, match="--host") as caught:
        _commands()["api"].make_context("api", ["--host", "0.0.0.0"])
    assert type(caught.value).__name__ == "NoSuchOption"


def test_mounted_files_exist() -> None:
    for name, service in COMPOSE["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_no_default_passwords_and_secrets_come_from_the_environment() -> None:
    for name, service in COMPOSE["services"].items():
        for key, value in _environment(service).items():
            if re.search(r"PASSWORD|TOKEN|SECRET", key):
                assert _REQUIRED.match(value), f"{name}: {key} has a default ({value!r}); use ${{{key}:?...}}"
            for url_password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", value):
                assert _REQUIRED.match(url_password), f"{name}: {key} has a literal password in its URL"
        command = " ".join(map(str, service.get("command") or []))
        assert "://" not in command or "@" not in command, f"{name}: credentials on the command line (ps shows them)"


def test_only_otlp_is_published_beyond_loopback_and_postgres_not_at_all() -> None:
    assert "ports" not in COMPOSE["services"]["postgres"]
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            published = str(port)
            if published.split(":")[0] in ("4317", "4318"):
                continue  # what apps send to: it has to be reachable
            assert published.startswith("127.0.0.1:"), f"{name}: {published} is published on every interface"
