"""The shortest useful otel_metrics program: traces, metrics and cost for a tiny "agent", exported over OTLP.

    python examples/quickstart.py            # sends to OTEL_EXPORTER_OTLP_ENDPOINT or localhost:4317
    python examples/quickstart.py --console  # also prints spans and metrics to stdout

With no collector running it still runs at full speed and raises nothing; the data is dropped.
"""

from __future__ import annotations

import asyncio
import sys

import otel_metrics
from otel_metrics import business_context, correlation_scope, record_llm_usage, track_performance


class SupportAgent:
    @track_performance(include_metadata=True)
    async def answer(self, question: str) -> dict[str, object]:
        await asyncio.sleep(0.01)  # the model call would be here
        cost = record_llm_usage("gpt-4o-mini", input_tokens=420, output_tokens=80, provider="openai")
        return {"success": True, "answer": f"echo: {question}", "cost_usd": str(cost)}


async def main() -> None:
    telemetry = otel_metrics.configure("quickstart", console="--console" in sys.argv, metric_dimensions=["tenant.id"])
    agent = SupportAgent()
    for tenant in ("acme", "globex"):
        with correlation_scope() as cid, business_context(tenant_id=tenant, user_id="u-1"):
            result = await agent.answer("where is my order?")
            print(f"{tenant}: correlation.id={cid} cost=${result['cost_usd']}")
    telemetry.shutdown(timeout_s=5)  # flush before exit (exit would flush too)


if __name__ == "__main__":
    asyncio.run(main())
