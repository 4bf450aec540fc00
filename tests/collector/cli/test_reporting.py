"""Every report command takes the same window, filter and output options, defined once: listed in each command's
--help, in one order, and read the same way before any database is opened."""

from __future__ import annotations

import pytest
import typer
from typer.core import TyperGroup, TyperOption
from typer.testing import CliRunner

from collector.cli import app

REPORTS = ("report", "stats", "costs", "trends", "outliers", "percentiles", "insights", "export")
STORED = (("summary",), ("budgets", "list"), ("alerts", "list"), ("alerts", "evaluate"))
DATABASE = ["--config", "--dsn"]
WINDOW = ["--hours", "--since", "--until"]
FILTERS = ["--service", "--operation", "--tenant", "--user", "--agent", "--model"]
OUTPUT = ["--format", "--output"]
# No database listens here: a command that got past its options would exit 1 (cannot connect), not 2.
NOWHERE = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"
runner = CliRunner()


def _options(*path: str) -> list[str]:
    command = typer.main.get_command(app)
    for name in path:
        assert isinstance(command, TyperGroup)
        command = command.commands[name]
    return [p.opts[0] for p in command.params if isinstance(p, TyperOption)]


def _in_order(wanted: list[str], options: list[str]) -> bool:
    at = [options.index(o) for o in wanted]
    return at == sorted(at) and at[-1] - at[0] == len(wanted) - 1


@pytest.mark.parametrize("name", REPORTS)
def test_every_report_lists_the_common_options_together(name: str) -> None:
    filters = [f for f in FILTERS if not (name == "insights" and f == "--user")]
    common = DATABASE + WINDOW + filters + OUTPUT
    assert _in_order(common, _options(name))
    result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert all(option in result.stdout for option in common), result.stdout


@pytest.mark.parametrize("path", STORED)
def test_every_stored_state_command_lists_database_and_output(path: tuple[str, ...]) -> None:
    options = _options(*path)
    assert _in_order(DATABASE + OUTPUT, options)
    assert not set(WINDOW + FILTERS) & set(options)


def test_insights_takes_no_user_filter() -> None:
    result = runner.invoke(app, ["insights", "--dsn", NOWHERE, "--user", "u1"])
    assert result.exit_code == 2 and "--user" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--hours", "-1"], "--hours must be > 0"),
        (["stats", "--format", "xml"], "--format: expected one of table, json, csv, got 'xml'"),
        (["export", "--format", "table"], "--format: expected one of csv, json, got 'table'"),
        (["summary", "--format", "xml"], "--format: expected one of table, json, csv, got 'xml'"),
        (["trends", "--since", "2d", "--hours", "3"], "exclusive"),
    ],
)
def test_common_options_are_checked_before_connecting(args: list[str], message: str) -> None:
    result = runner.invoke(app, [*args, "--dsn", NOWHERE])
    assert result.exit_code == 2 and message in result.stderr


def test_a_report_reaches_the_database_with_its_options() -> None:
    result = runner.invoke(app, ["costs", "--dsn", NOWHERE, "--service", "s", "--hours", "2", "-f", "json"])
    assert result.exit_code == 1 and "cannot connect to the database" in result.stderr
