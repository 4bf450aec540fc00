"""The main job end to end, as a user runs it: ``python -m examples.demo`` on embedded defaults.

The demo runs as a real subprocess (collector, embedded PostgreSQL, both example services, load) with an OTLP
forward endpoint pointed at a gRPC TraceService in this test. While it keeps running, the test checks the sink,
the Prometheus exposition, the forward and the report against the load generator's own record; then SIGTERM
(what a process manager sends; Ctrl-C's SIGINT takes the same path) must stop every process the demo started.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from collector.exporters.postgres.database import connect_from_config
from processors.cost import default_price_table
from tests.docs.docblocks import parse_blocks, shell_commands
from tests.support.trace_recorder import TraceRecorder

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 40
# README commands that run until stopped or need a terminal; everything else in README bash blocks runs below.
LONG_RUNNING = {("collector",), ("api",), ("db", "psql")}

pytestmark = pytest.mark.slow


T = TypeVar("T")


def _wait_for(predicate: Callable[[], T], what: str, timeout: float = 120.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)  # polling a separate process's progress with a deadline


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _cli_json(config: Path, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "collector.cli", *args, "--config", str(config), "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return rows


def test_demo_delivers_every_request_everywhere_and_stops_cleanly(
    trace_recorder: tuple[TraceRecorder, int],
) -> None:
    forward, forward_port = trace_recorder  # stands in for Tempo/Jaeger
    # Not under pytest's 0700 basetemp: as root, pgserver runs PostgreSQL as its own user.
    workdir = Path(tempfile.mkdtemp(prefix="otel-e2e-")) / "demo"
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "examples.demo",
            "--count",
            str(REQUESTS),
            "--ports",
            "auto",
            "--workdir",
            str(workdir),
            "--forward-endpoint",
            f"127.0.0.1:{forward_port}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    output: list[str] = []

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            output.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        _wait_for(lambda: "still running" in "".join(output) or demo.poll() is not None, "the demo's report", 300)
        assert demo.poll() is None, "".join(output)
        load = json.loads((workdir / "load.json").read_text())
        config = workdir / "otel-collector.yaml"
        ports = load["ports"]
        requests: dict[str, list[Any]] = load["requests"]
        assert load["sent"] == REQUESTS == len(requests)
        assert load["echoed_ok"] == REQUESTS  # every response echoed its X-Correlation-ID

        # 1. Every request's server span reached Postgres with its correlation id, tenant and status.
        with connect_from_config(config) as conn:
            rows = conn.execute(
                "SELECT correlation_id, tenant_id, http_status_code, status_code FROM spans "
                "WHERE service_name = 'agent-service' AND name = 'POST /v1/query' AND correlation_id = ANY(%s)",
                (list(requests),),
            ).fetchall()
            missing = set(requests) - {r[0] for r in rows}
            log = (workdir / "collector.log").read_text(errors="replace")
            assert not missing, (
                f"{len(missing)} requests not in the sink: {sorted(missing)}\n--- demo ---\n{''.join(output)}"
                f"\n--- collector.log (end) ---\n{log[-4000:]}"
            )
            assert len(rows) == REQUESTS
            for cid, tenant, http_status, status_code in rows:
                assert [tenant, http_status] == requests[cid], cid
                assert status_code == (2 if http_status >= 500 else 0)
            # The multi-step agent called tools-service over HTTP: the id crossed the service boundary.
            tool_ids = {
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT correlation_id FROM spans WHERE service_name = 'tools-service' "
                    "AND name = 'GET /v1/search'"
                ).fetchall()
            }
            assert tool_ids and tool_ids <= set(requests)
            # 2. Every LLM span carries exactly the price table's cost for its tokens.
            llm = conn.execute(
                "SELECT model, input_tokens, output_tokens, cost_usd, "
                "coalesce((attributes->>'gen_ai.usage.cache_read.input_tokens')::bigint, 0) "
                "FROM spans WHERE name LIKE 'chat %%' AND model IS NOT NULL AND correlation_id = ANY(%s)",
                (list(requests),),
            ).fetchall()
            assert llm
            table = default_price_table()
            for model, inp, out, cost, cached in llm:
                expected = table.llm_cost(model, inp, out, cached)
                assert expected is not None and abs(Decimal(cost) - expected) < Decimal("1e-9"), model
            stored = {
                (bytes(t), bytes(s))
                for t, s in conn.execute(
                    "SELECT trace_id, span_id FROM spans WHERE correlation_id = ANY(%s)", (list(requests),)
                ).fetchall()
            }

        # 3. The OTLP forward (Tempo/Jaeger's place) received the same spans.
        _wait_for(lambda: stored <= forward.span_ids(), "the forward to receive every stored span", 60)

        # 4. Prometheus exposition has the RED metrics, and its call count matches the load.
        def red_calls() -> float:
            text = httpx.get(f"http://127.0.0.1:{ports['prometheus']}/metrics", timeout=10).text
            total = 0.0
            for line in text.splitlines():
                if (
                    line.startswith("traces_span_metrics_calls_total{")
                    and 'span_name="POST /v1/query"' in line
                    and 'service_name="agent-service"' in line
                ):
                    total += float(line.rsplit(" ", 1)[1])
            return total if total >= REQUESTS else 0.0

        assert _wait_for(red_calls, "spanmetrics to expose every request", 90) == REQUESTS
        text = httpx.get(f"http://127.0.0.1:{ports['prometheus']}/metrics", timeout=10).text
        assert re.search(r"^traces_span_metrics_duration_milliseconds_bucket\{", text, re.M)
        assert re.search(r"^operation_calls_total\{", text, re.M)

        # 5. The analytics API inside the collector answers, and its health sees the database.
        api = f"http://127.0.0.1:{ports['api']}/api/v1"
        assert httpx.get(f"{api}/summary", timeout=30).status_code == 200
        health = httpx.get(f"{api}/health", timeout=30).json()
        assert "database" in json.dumps(health)

        # 6. Every otel-metrics command the README shows works on this data, pointed at the demo's config.
        readme = ROOT / "README.md"
        commands = [
            words
            for block in parse_blocks(readme.read_text(), readme)
            if block.lang == "bash"
            for words in shell_commands(block.code)
            if words[0] == "otel-metrics"
        ]
        ran = 0
        for words in commands:
            args = words[1:]
            if tuple(args[:1]) in LONG_RUNNING or tuple(args[:2]) in LONG_RUNNING:
                continue
            if "--config" in args:
                args[args.index("--config") + 1] = str(config)
            else:
                args += ["--config", str(config)]
            done = subprocess.run(
                [sys.executable, "-m", "collector.cli", *args], cwd=workdir, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, f"README: otel-metrics {' '.join(words[1:])}\n{done.stdout}{done.stderr}"
            ran += 1
        assert ran >= 8

        # 7. The report's numbers are the load generator's own count.
        report = _cli_json(config, "report", "--hours", "1")
        row = next(r for r in report if r["service"] == "agent-service" and r["operation"] == "POST /v1/query")
        assert row["calls"] == REQUESTS
        assert row["errors"] == load["failed"] == sum(1 for _, status in requests.values() if status >= 500)
        by_tenant = {r["key"]: r for r in _cli_json(config, "costs", "--by", "tenant", "--hours", "1")}
        assert set(load["by_tenant"]) <= set(by_tenant)
        assert all(by_tenant[t]["cost_usd"] > 0 for t in load["by_tenant"])
        # Every cost has an owner: the tools service's priced API calls carry the tenant from W3C baggage.
        # (Spans without a tenant, such as health checks, may be listed: they cost nothing.)
        assert by_tenant.get("(none)", {"cost_usd": 0})["cost_usd"] == 0, by_tenant["(none)"]
    finally:
        # 8. SIGTERM (a process manager's stop; Ctrl-C takes the same path) stops every process the demo started.
        if demo.poll() is None:
            demo.send_signal(signal.SIGTERM)
        code = demo.wait(timeout=90)
        reader.join(timeout=10)
    shutil.rmtree(workdir.parent, ignore_errors=True)
    assert code == 0, "".join(output)
    assert "stopped." in "".join(output)
    for name in ("otlp_grpc", "prometheus", "health", "agent", "tools"):
        assert not _port_open(load["ports"][name]), f"{name} still listening after SIGTERM"
