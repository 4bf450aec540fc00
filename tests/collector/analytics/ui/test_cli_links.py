"""The CLI prints the UI page next to the trace ids and correlation ids its reports show, when the config it reads
has the ``analytics`` extension (and never in machine formats)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from collector.cli import app
from tests.collector.analytics.ui import ui_data
from tests.collector.analytics.ui.ui_server import Served

runner = CliRunner()


def _config(tmp_path: Path, endpoint: str = "0.0.0.0:8890") -> Path:
    path = tmp_path / "otel-collector.yaml"
    # A token: the extension refuses a non-loopback endpoint without one.
    path.write_text(f"extensions:\n  analytics:\n    endpoint: '{endpoint}'\n    token: secret\n")
    return path


def test_correlation_cost_and_outliers_print_their_ui_urls(served: Served, tmp_path: Path) -> None:
    dsn = served.extension.dsn()
    config = _config(tmp_path)
    result = runner.invoke(app, ["costs", "--correlation-id", ui_data.CORRELATION, "--dsn", dsn, "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert f"http://127.0.0.1:8890/traces?correlation_id={ui_data.CORRELATION}" in result.stdout

    result = runner.invoke(app, ["outliers", "--hours", "2", "-z", "1.5", "--dsn", dsn, "-c", str(config)])
    assert result.exit_code == 0, result.output
    urls = re.findall(r"http://127\.0\.0\.1:8890/traces/([0-9a-f]{32})", result.stdout)
    assert urls and len(urls) == len(set(urls))

    as_json = runner.invoke(
        app, ["outliers", "--hours", "2", "-z", "1.5", "--dsn", dsn, "-c", str(config), "--format", "json"]
    )
    assert as_json.exit_code == 0 and {o["trace_id"] for o in json.loads(as_json.stdout)} == set(urls)


def test_no_link_without_the_analytics_extension(served: Served, tmp_path: Path) -> None:
    config = tmp_path / "otel-collector.yaml"
    config.write_text("receivers: {}\n")
    args = ["costs", "--correlation-id", ui_data.CORRELATION, "--dsn", served.extension.dsn(), "-c", str(config)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "http://" not in result.stdout
    config.write_text("extensions: {analytics: [not, a, mapping\n")  # unreadable: the report still prints
    broken = runner.invoke(app, args)
    assert broken.exit_code == 0 and ui_data.CORRELATION in broken.stdout and "http://" not in broken.stdout
    ipv6 = runner.invoke(app, [*args[:-1], str(_config(tmp_path, "[::1]:9000"))])
    assert f"http://[::1]:9000/traces?correlation_id={ui_data.CORRELATION}" in ipv6.stdout
