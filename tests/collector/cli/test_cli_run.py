"""``otel-metrics validate`` and ``collector`` as a user runs them, including SIGTERM of ``python -m collector``."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from typer.testing import CliRunner

from collector.cli import app

REPO = Path(__file__).resolve().parents[3]


CONFIG = """
extensions:
  health_check:
    endpoint: 127.0.0.1:0
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc_port}
      http:
        endpoint: 127.0.0.1:0
exporters:
  prometheus:
    endpoint: 127.0.0.1:0
service:
  extensions: [health_check]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [prometheus]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text(text)
    return path


def test_validate_ok_and_default_config_is_valid(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["validate", "--config", str(_write(tmp_path, CONFIG.format(grpc_port=0)))])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK:")
    result = runner.invoke(app, ["validate", "--config", str(REPO / "otel-collector.yaml")])
    assert result.exit_code == 0, result.output
    assert "3 pipeline(s): traces, metrics, logs" in result.output


def test_validate_reports_every_error_and_exits_1(tmp_path: Path) -> None:
    text = CONFIG.format(grpc_port=0).replace("endpoint: 127.0.0.1:0\nservice", "endpont: 127.0.0.1:0\nservice")
    text = text.replace("exporters: [prometheus]", "exporters: [prometheus, promethus/2]")
    result = CliRunner().invoke(app, ["validate", "--config", str(_write(tmp_path, text))])
    assert result.exit_code == 1
    assert "exporters.prometheus.endpont: unknown key (did you mean 'endpoint'?)" in result.output
    assert "references exporter 'promethus/2' which is not configured" in result.output


def test_validate_never_echoes_a_dsn_password(tmp_path: Path) -> None:
    for dsn in ("mysql://app:Hunter2Secret@db/app", "host=db user=app password=Hunter2Secret"):
        text = CONFIG.format(grpc_port=0).replace(
            "exporters:\n  prometheus:", f"exporters:\n  postgres:\n    dsn: '{dsn}'\n  prometheus:"
        )
        text = text.replace("exporters: [prometheus]", "exporters: [prometheus, postgres]")
        result = CliRunner().invoke(app, ["validate", "--config", str(_write(tmp_path, text))])
        assert result.exit_code == 1
        assert "dsn: expected a postgresql:// URL" in result.output
        assert "Hunter2Secret" not in result.output


def test_validate_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "receivers:\n  otlp: {protocols: [\n")
    result = CliRunner().invoke(app, ["validate", "--config", str(path)])
    assert result.exit_code == 1
    assert re.search(rf"{re.escape(str(path))}:3:\d+: YAML syntax error", result.output)


def _start(config: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "collector", "--config", str(config), *extra],
        cwd=REPO,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for_line(proc: subprocess.Popen[str], pattern: str, timeout: float = 60.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    proc.kill()
    raise AssertionError(f"no line matching {pattern!r}; got:\n{''.join(seen)}")


def test_sigterm_drains_and_exits_0(tmp_path: Path) -> None:
    proc = _start(_write(tmp_path, CONFIG.format(grpc_port=0)), "--shutdown-timeout", "5")
    try:
        port = int(_wait_for_line(proc, r"OTLP/HTTP on .* \(port (\d+)\)").group(1))
        _wait_for_line(proc, r"collector started")
        request = ExportMetricsServiceRequest()
        metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
        metric.name = "jobs"
        metric.gauge.data_points.add().as_int = 3
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/metrics",
            content=request.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert response.status_code == 200
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "shutting down (bound 5.0s)" in rest


def test_start_failure_exits_1_naming_the_component(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _start(_write(tmp_path, CONFIG.format(grpc_port=port)))
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 1
    assert "collector failed to start" in err and "receiver 'otlp'" in err and str(port) in err


def test_config_error_exits_1_before_binding(tmp_path: Path) -> None:
    proc = _start(_write(tmp_path, CONFIG.format(grpc_port=0).replace("level: none", "levle: none")))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "service.telemetry.metrics.levle: unknown key (did you mean 'level'?)" in err
    assert "OTLP/" not in err  # nothing started
