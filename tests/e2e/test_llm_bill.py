"""The bill, end to end: a small app using the real openai and anthropic clients (streaming included) runs under
``opentelemetry-instrument`` with our distro and OpenLLMetry's instrumentations, the Anthropic SDK's own tracing on
too (two spans per Anthropic call), against the local fake provider; its spans go through the collector (cost,
business) into the sink, and ``otel-metrics costs --by model`` and ``--by tenant`` equal the bill worked out by
hand from the price sheet."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from collector.cli import app as cli
from tests.llm import fake_provider
from tests.llm.test_instrumentations import BILL

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("openai")
pytest.importorskip("anthropic")
pytest.importorskip("opentelemetry.instrumentation.openai")
pytest.importorskip("opentelemetry.instrumentation.anthropic")

APP = """
import os, sys
import anthropic, openai

url = os.environ["FAKE_PROVIDER_URL"]
messages = [{"role": "user", "content": "hi"}]
if sys.argv[1] == "openai":
    client = openai.OpenAI(base_url=url + "/v1", api_key="test", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    stream = client.chat.completions.create(
        model="o4-mini", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    print("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
else:
    client = anthropic.Anthropic(base_url=url, api_key="test", max_retries=0)
    client.messages.create(model="claude-sonnet-4-20250514", max_tokens=500, messages=messages)
    with client.messages.stream(model="claude-3-5-haiku-20241022", max_tokens=200, messages=messages) as s:
        print(s.get_final_text())
"""
DEADLINE_S = 90.0


def _config(tmp: Path, dsn: str) -> Path:
    path = tmp / "collector.yaml"
    path.write_text(
        f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  business: {{}}
  cost: {{}}
exporters:
  postgres:
    dsn: "{dsn}"
    retention_check_interval: 0
service:
  telemetry:
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
      processors: [business, cost]
      exporters: [postgres]
"""
    )
    return path


def _collector(config: Path, log: Path) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "support" / "collector_proc.py"), str(config)],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, log.read_text()
    return proc, int(json.loads(line)["grpc_port"])


def _run_app(tmp: Path, which: str, tenant: str, port: int, url: str) -> None:
    script = tmp / "llm_app.py"
    script.write_text(APP)
    instrument = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    assert instrument
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ANTHROPIC_"))}
    env.update(
        FAKE_PROVIDER_URL=url,
        OTEL_SERVICE_NAME=f"{which}-app",
        OTEL_RESOURCE_ATTRIBUTES=f"tenant.id={tenant}",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_DISTRO="otel_metrics",
        OTEL_PYTHON_CONFIGURATOR="otel_metrics",
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run([instrument, sys.executable, str(script), which], env=env, capture_output=True, text=True,
                          timeout=180, cwd=tmp)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Hello stream.", done.stderr


def _costs(dsn: str, by: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["costs", "--dsn", dsn, "--hours", "1", "--by", by, "-f", "json"])
    assert result.exit_code == 0, result.stderr
    return {r["key"]: r for r in json.loads(result.stdout)}


def test_costs_by_model_and_tenant_equal_the_bill(pg_dsn: str, sink_tmp_path: Path) -> None:
    served = fake_provider.Served()
    proc, port = _collector(_config(sink_tmp_path, pg_dsn), sink_tmp_path / "collector.log")
    try:
        with fake_provider.running(served) as url:
            _run_app(sink_tmp_path, "openai", "acme", port, url)
            _run_app(sink_tmp_path, "anthropic", "globex", port, url)
        expected_model = {fake_provider.response_model(m): BILL[m] for m in BILL}
        expected_tenant = {
            "acme": BILL["gpt-4o-mini"] + BILL["o4-mini"],
            "globex": BILL["claude-sonnet-4-20250514"] + BILL["claude-3-5-haiku-20241022"],
        }
        deadline = time.monotonic() + DEADLINE_S
        while True:  # the app flushed at exit; the collector writes asynchronously
            by_model = {k: Decimal(repr(v["cost_usd"])) for k, v in _costs(pg_dsn, "model").items() if v["cost_usd"]}
            if by_model == expected_model or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert by_model == expected_model, (by_model, (sink_tmp_path / "collector.log").read_text()[-2000:])
        by_tenant = {k: Decimal(repr(v["cost_usd"])) for k, v in _costs(pg_dsn, "tenant").items() if v["cost_usd"]}
        assert by_tenant == expected_tenant
        with psycopg.connect(pg_dsn) as conn:
            folded = conn.execute("SELECT count(*) FROM spans WHERE attributes ? 'cost.duplicate_of'").fetchone()
        assert [c[1] for c in served.calls] == list(BILL)
        assert folded is not None and folded[0] >= 1  # the Anthropic SDK's own spans of the same calls
    finally:
        proc.terminate()
        proc.wait(30)
