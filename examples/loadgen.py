"""Load generator for the example agent service, with a progress bar.

    python -m examples.loadgen --url http://127.0.0.1:8000 --duration 30 --users 20 --tenants 4

Every request carries a tenant and a user header and its own ``X-Correlation-ID``; ``--error-rate`` and
``--slow-rate`` ask the service to fail or to stall. The run is deterministic for a given ``--seed`` (which
requests fail, which are slow, which tenant sends what; correlation ids are fresh every run). The summary it
returns is what the end-to-end test compares with the analytics report.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

TENANTS = ("acme", "globex", "initech", "umbrella", "hooli", "stark")
QUERIES = (
    "what is our refund policy",
    "summarise yesterday's incidents",
    "compare three vendors for vector search and cite sources with pricing and latency numbers",
    "draft a reply to the customer",
    "plan a migration of the billing database to a new region with zero downtime and a rollback plan",
    "find the top five churn drivers this quarter across all regions and explain each with evidence",
)


@dataclass
class LoadResult:
    sent: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_tenant: Counter[str] = field(default_factory=Counter)
    transport_errors: int = 0
    correlation_ids: list[str] = field(default_factory=list)
    # correlation id -> (tenant, HTTP status or 0 for a transport error): what each request was and got.
    requests: dict[str, tuple[str, int]] = field(default_factory=dict)
    echoed_ok: int = 0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.by_status.items() if status < 400)

    @property
    def failed(self) -> int:
        return self.sent - self.ok


@dataclass(frozen=True)
class Plan:
    url: str
    users: int = 10
    tenants: int = 4
    error_rate: float = 0.05
    slow_rate: float = 0.02
    slow_ms: int = 600
    duration_s: float | None = 30.0
    count: int | None = None
    concurrency: int = 8
    seed: int = 7


async def run_load(plan: Plan, *, console: Console | None = None) -> LoadResult:
    """Send requests until ``count`` is reached or ``duration_s`` has passed; return what happened."""
    rng = random.Random(plan.seed)
    result = LoadResult()
    tenants = TENANTS[: max(1, min(plan.tenants, len(TENANTS)))]
    deadline = None if plan.duration_s is None else time.monotonic() + plan.duration_s
    lock = asyncio.Lock()
    started = time.monotonic()

    def next_request() -> dict[str, object] | None:
        if plan.count is not None and result.sent >= plan.count:
            return None
        if deadline is not None and time.monotonic() >= deadline:
            return None
        result.sent += 1
        user = rng.randrange(plan.users)
        tenant = tenants[user % len(tenants)]
        roll = rng.random()
        body: dict[str, object] = {"query": rng.choice(QUERIES)}
        if roll < plan.error_rate:
            body["fail"] = True
        elif roll < plan.error_rate + plan.slow_rate:
            body["slow_ms"] = plan.slow_ms
        cid = str(uuid.uuid4())  # fresh per run: ids must not repeat across runs into the same database
        return {"json": body, "tenant": tenant, "user": f"user-{user:03d}", "cid": cid}

    progress = Progress(
        TextColumn("[bold]load"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        transient=False,
    )
    total = plan.count if plan.count is not None else None
    with progress:
        task = progress.add_task("load", total=total, status="")

        async def worker(client: httpx.AsyncClient) -> None:
            while True:
                async with lock:
                    req = next_request()
                if req is None:
                    return
                headers = {
                    "X-Tenant-ID": str(req["tenant"]),
                    "X-User-ID": str(req["user"]),
                    "X-Correlation-ID": str(req["cid"]),
                }
                try:
                    response = await client.post("/v1/query", json=req["json"], headers=headers)
                    result.by_status[response.status_code] += 1
                    status = response.status_code
                    if response.headers.get("x-correlation-id") == req["cid"]:
                        result.echoed_ok += 1
                except httpx.HTTPError:
                    result.transport_errors += 1
                    result.by_status[0] += 1
                    status = 0
                result.requests[str(req["cid"])] = (str(req["tenant"]), status)
                result.by_tenant[str(req["tenant"])] += 1
                result.correlation_ids.append(str(req["cid"]))
                progress.update(task, advance=1, status=f"ok {result.ok}  failed {result.failed}")

        async with httpx.AsyncClient(base_url=plan.url, timeout=30) as client:
            await asyncio.gather(*(worker(client) for _ in range(plan.concurrency)))
    result.elapsed_s = time.monotonic() - started
    return result


def main(
    url: str = typer.Option("http://127.0.0.1:8000", help="agent-service base URL"),
    users: int = typer.Option(10, min=1),
    tenants: int = typer.Option(4, min=1, max=len(TENANTS)),
    error_rate: float = typer.Option(0.05, min=0.0, max=1.0),
    slow_rate: float = typer.Option(0.02, min=0.0, max=1.0),
    duration: float = typer.Option(30.0, min=0.0, help="seconds (ignored with --count)"),
    count: int = typer.Option(0, min=0, help="number of requests (0 = run for --duration)"),
    concurrency: int = typer.Option(8, min=1),
    seed: int = 7,
) -> None:
    plan = Plan(
        url,
        users,
        tenants,
        error_rate,
        slow_rate,
        600,
        None if count else duration,
        count or None,
        concurrency,
        seed,
    )
    result = asyncio.run(run_load(plan))
    typer.echo(
        f"sent {result.sent}  ok {result.ok}  failed {result.failed}  in {result.elapsed_s:.1f}s "
        f"({result.sent / max(result.elapsed_s, 1e-9):.0f} req/s)"
    )


if __name__ == "__main__":
    typer.run(main)
