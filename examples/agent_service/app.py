"""The example agent service: allocation, agent selection, a simple and a multi-step agent, tool calls and LLM
calls, all observed with otel_metrics.

Run: ``uvicorn examples.agent_service.app:app --port 8000`` with ``TOOLS_URL=http://127.0.0.1:8001``
(the demo does this for you). Request::

    curl -s localhost:8000/v1/query -H 'X-Tenant-ID: acme' -H 'X-User-ID: u1' \
         -H 'Content-Type: application/json' -d '{"query": "compare three vendors and cite sources"}'

Headers map to business metadata (``X-Tenant-ID`` → ``tenant.id``, ``X-User-ID`` → ``user.id``); the response
echoes ``X-Correlation-ID``. ``fail`` and ``slow_ms`` in the body inject failures and latency for load tests.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Header, HTTPException
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from pydantic import BaseModel, Field

from examples.agent_service.fake_llm import FakeLLM
from otel_metrics import (
    business_context,
    configure,
    get_correlation_id,
    record_agent_selection,
    record_error,
    record_satisfaction,
    record_tool_call,
    track_performance,
)
from otel_metrics.fastapi import instrument_app

TOOLS_URL = os.environ.get("TOOLS_URL", "http://127.0.0.1:8001")
telemetry = configure(
    os.environ.get("OTEL_SERVICE_NAME", "agent-service"), metric_dimensions=("tenant.id", "gen_ai.agent.name")
)
HTTPXClientInstrumentor().instrument()  # propagates traceparent and baggage (correlation.id) to tools-service
app = FastAPI(title="agent-service")
instrument_app(app, header_attributes={"x-tenant-id": "tenant.id", "x-user-id": "user.id"})
llm = FakeLLM()


class Query(BaseModel):
    query: str = Field(min_length=1, max_length=4000)
    fail: bool = False
    slow_ms: int = Field(default=0, ge=0, le=60_000)


class Answer(BaseModel):
    answer: str
    agent: str
    correlation_id: str | None
    cost_tier: str


@dataclass(frozen=True)
class Allocation:
    tenant_tier: str
    max_steps: int


class AllocationService:
    """Decides how much work a tenant's request may use (in the seed systems: a budget allocator)."""

    @track_performance()
    def allocate(self, tenant: str) -> Allocation:
        tier = "premium" if tenant in {"acme", "initech"} else "standard"
        return Allocation(tier, 4 if tier == "premium" else 2)


class AgentSelector:
    @track_performance(include_metadata=True)
    def select(self, query: str) -> dict[str, object]:
        complexity = min(1.0, len(query.split()) / 12)
        agent = "multi_step_agent" if complexity >= 0.5 else "simple_agent"
        record_agent_selection(
            agent,
            complexity_score=complexity,
            reason="long multi-part query" if agent == "multi_step_agent" else "short query",
        )
        return {"success": True, "agent": agent, "complexity": complexity}


class SimpleAgent:
    name = "simple_agent"

    @track_performance()
    async def run(self, query: str, allocation: Allocation) -> str:
        completion = await llm.complete("gpt-4o-mini", "You answer briefly.", query)
        return completion.text


class MultiStepAgent:
    name = "multi_step_agent"

    @track_performance()
    async def run(self, query: str, allocation: Allocation) -> str:
        plan = await llm.complete("claude-sonnet-4", "You plan research in steps. " * 20, query)
        notes = []
        async with httpx.AsyncClient(base_url=TOOLS_URL, timeout=10) as client:
            for step in range(allocation.max_steps - 1):
                started = asyncio.get_running_loop().time()
                ok = True
                try:
                    response = await client.get("/v1/search", params={"q": f"{query} step {step}"})
                    response.raise_for_status()
                    notes.append(str(response.json()["results"][0]["title"]))
                except httpx.HTTPError as exc:
                    ok = False
                    record_error(exc, severity="warning", recovered=True)
                record_tool_call("web_search", duration_s=asyncio.get_running_loop().time() - started, success=ok)
        final = await llm.complete("gpt-4o", "You write the final answer from notes.", plan.text + " ".join(notes))
        return final.text


allocator = AllocationService()
selector = AgentSelector()
AGENTS = {a.name: a for a in (SimpleAgent(), MultiStepAgent())}


@app.post("/v1/query", response_model=Answer)
async def query(body: Query, x_tenant_id: str = Header(default="unknown")) -> Answer:
    allocation = allocator.allocate(x_tenant_id)
    choice = selector.select(body.query)
    agent = AGENTS[str(choice["agent"])]
    agent_attributes: dict[str, Any] = {"gen_ai.agent.name": agent.name}
    with business_context(**agent_attributes):
        if body.slow_ms:
            await asyncio.sleep(body.slow_ms / 1000)
        if body.fail:
            record_error("upstream model refused the request", severity="error", recovered=False)
            raise HTTPException(status_code=502, detail="the model provider failed")
        answer = await agent.run(body.query, allocation)
        # A deterministic stand-in for a grader: longer answers from the multi-step agent score higher.
        quality = 0.9 if agent.name == "multi_step_agent" else 0.75
        trace.get_current_span().set_attribute("quality.score", quality)
        record_satisfaction(quality)
    return Answer(
        answer=answer, agent=agent.name, correlation_id=get_correlation_id(), cost_tier=allocation.tenant_tier
    )


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
