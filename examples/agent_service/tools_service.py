"""The second service: a search tool the agents call over HTTP, so correlation ids visibly cross services.

Run: ``uvicorn examples.agent_service.tools_service:app --port 8001`` (the demo does this for you).
"""

from __future__ import annotations

import asyncio
import hashlib
import os

from fastapi import FastAPI, HTTPException

from otel_metrics import configure, record_cost, track_performance
from otel_metrics.fastapi import instrument_app

telemetry = configure(
    os.environ.get("OTEL_SERVICE_NAME", "tools-service"), metric_dimensions=("tenant.id", "gen_ai.agent.name")
)
app = FastAPI(title="tools-service")
instrument_app(app, header_attributes={"x-tenant-id": "tenant.id", "x-user-id": "user.id"})


@track_performance("search_index")
async def _lookup(query: str) -> list[dict[str, str]]:
    digest = hashlib.sha256(query.encode()).hexdigest()
    await asyncio.sleep(0.002 + int(digest[:2], 16) / 25_500)
    return [{"id": digest[i : i + 8], "title": f"Result {i // 8 + 1} for {query[:24]}"} for i in range(0, 24, 8)]


@app.get("/v1/search")
async def search(q: str, fail: bool = False) -> dict[str, object]:
    if fail:
        raise HTTPException(status_code=503, detail="search index unavailable")
    results = await _lookup(q)
    # A paid third-party search API: priced per call, not per token.
    record_cost(0.0005, category="api_call", **{"tool.name": "web_search"})
    return {"query": q, "results": results}
