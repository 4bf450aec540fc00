"""Traces in Jaeger: ``python -m examples.demo --jaeger`` runs the example services -> our collector (the shipped
config plus an ``otlp/jaeger`` exporter) -> Jaeger v2. Jaeger's own query API returns each request's trace with
every span, across both services, carrying the request's correlation.id and tenant, and every LLM span its
cost.usd (an LLM span is one that recorded token usage); the demo's report links outlier rows to those traces."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector.exporters.postgres.database import connect_from_config
from processors.cost import default_price_table
from tests.peers.peer_procs import ROOT, wait_for

pytestmark = pytest.mark.slow
REQUESTS = 12


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span["tags"]}


def test_demo_sends_every_span_to_jaeger_with_correlation_tenant_and_cost(jaeger: Path, workdir: Path) -> None:
    args = ["--jaeger", "--count", str(REQUESTS), "--ports", "auto", "--workdir", str(workdir / "demo")]
    demo = subprocess.Popen(
        [sys.executable, "-m", "examples.demo", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
    )
    output: list[str] = []

    def read() -> None:
        assert demo.stdout is not None
        output.extend(demo.stdout)

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_for(lambda: "still running" in "".join(output) or demo.poll() is not None, "the demo's report", 420)
        assert demo.poll() is None, "".join(output)
        load = json.loads((workdir / "demo" / "load.json").read_text())
        jaeger_url = load["jaeger"]
        assert jaeger_url, "".join(output)
        requests: dict[str, list[Any]] = load["requests"]  # correlation id -> [tenant, http status]
        with connect_from_config(workdir / "demo" / "otel-collector.yaml") as conn:
            traces = {
                bytes(trace_id).hex(): cid
                for trace_id, cid in conn.execute(
                    "SELECT DISTINCT trace_id, correlation_id FROM spans WHERE service_name = 'agent-service' "
                    "AND name = 'POST /v1/query' AND correlation_id = ANY(%s)",
                    (list(requests),),
                ).fetchall()
            }
            stored = dict(
                conn.execute(
                    "SELECT encode(trace_id, 'hex'), count(*) FROM spans WHERE correlation_id = ANY(%s) GROUP BY 1",
                    (list(requests),),
                ).fetchall()
            )
        assert len(traces) == REQUESTS
        table = default_price_table()
        services_seen: set[str] = set()
        llm_spans = 0
        for trace_id, cid in traces.items():

            def fetch(t: str = trace_id) -> dict[str, Any] | None:
                response = httpx.get(f"{jaeger_url}/api/traces/{t}", timeout=10)
                data = response.json().get("data") if response.status_code == 200 else None
                return data[0] if data and len(data[0]["spans"]) >= stored[t] else None

            trace = wait_for(fetch, f"trace {trace_id} in Jaeger with {stored[trace_id]} spans", 60)
            assert len(trace["spans"]) == stored[trace_id]
            for span in trace["spans"]:
                tags = _tags(span)
                services_seen.add(trace["processes"][span["processID"]]["serviceName"])
                assert tags.get("correlation.id") == cid, (span["operationName"], tags)
                assert tags.get("tenant.id") == requests[cid][0], (span["operationName"], tags)
                if "gen_ai.usage.input_tokens" in tags:  # an LLM call that recorded its usage
                    llm_spans += 1
                    expected = table.llm_cost(
                        tags["gen_ai.request.model"],
                        tags["gen_ai.usage.input_tokens"],
                        tags["gen_ai.usage.output_tokens"],
                        tags.get("gen_ai.usage.cache_read.input_tokens", 0),
                    )
                    assert expected is not None
                    assert abs(Decimal(str(tags["cost.usd"])) - expected) < Decimal("1e-9")
        assert {"agent-service", "tools-service"} <= services_seen and llm_spans > 0
        # The report section links rows to Jaeger traces the API knows.
        links = re.findall(re.escape(jaeger_url) + r"/trace/([0-9a-f]{32})", "".join(output))
        for trace_id in links:
            assert httpx.get(f"{jaeger_url}/api/traces/{trace_id}", timeout=10).status_code == 200
    finally:
        demo.send_signal(2)
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()
