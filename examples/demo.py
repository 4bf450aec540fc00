"""The main job end to end: collector on embedded PostgreSQL, example services, load, the analytics report.

    bash scripts/demo                       # what the README's first command runs
    python -m examples.demo --duration 60   # same, longer load
    python -m examples.demo --dsn postgresql://u:p@db/otel --forward-endpoint tempo:4317
    python -m examples.demo --jaeger        # also Jaeger v2 (built by scripts/upstream), traces linked from the report

It writes its collector config (``otel-collector.yaml`` with the demo's ports, DSN and forward endpoint) and
every process's log under ``--workdir``, starts the collector and waits for its health check, starts the two
example services with the standard ``OTEL_*`` variables pointing at it, drives load with a progress bar, waits
until the sink holds every request, prints the report, costs and alerts, and then the URLs that stay up until
Ctrl-C. (or ``--no-wait``) stops every process it started. Running it twice reuses the same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import typer
import yaml
from rich.console import Console
from rich.panel import Panel

from examples.loadgen import Plan, run_load

ROOT = Path(__file__).resolve().parents[1]
console = Console()

STANDARD_PORTS = {
    "otlp_grpc": 4317,
    "otlp_http": 4318,
    "prometheus": 8889,
    "telemetry": 8888,
    "health": 13133,
    "api": 8890,
    "agent": 8000,
    "tools": 8001,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class Ports:
    otlp_grpc: int
    otlp_http: int
    prometheus: int
    telemetry: int
    health: int
    api: int
    agent: int
    tools: int

    @classmethod
    def choose(cls, auto: bool) -> Ports:
        if auto:
            return cls(**{name: _free_port() for name in STANDARD_PORTS})
        busy = [f"{name} :{port}" for name, port in STANDARD_PORTS.items() if _port_in_use(port)]
        if busy:
            raise typer.BadParameter(
                f"ports already in use: {', '.join(busy)} (another demo still running? or pass --ports auto)"
            )
        return cls(**STANDARD_PORTS)


def write_config(workdir: Path, ports: Ports, dsn: str | None, forward: str | None, jaeger: str | None = None) -> Path:
    """otel-collector.yaml with the demo's ports, DSN and optional OTLP forwards (Tempo, Jaeger) filled in."""
    config = yaml.safe_load((ROOT / "otel-collector.yaml").read_text())
    grpc = config["receivers"]["otlp"]["protocols"]["grpc"]
    grpc["endpoint"] = f"127.0.0.1:{ports.otlp_grpc}"
    config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] = f"127.0.0.1:{ports.otlp_http}"
    exporters = config["exporters"]
    exporters["prometheus"]["endpoint"] = f"127.0.0.1:{ports.prometheus}"
    postgres = exporters["postgres"]
    postgres["data_dir"] = str(workdir / "postgres")
    if dsn:
        postgres["dsn"] = dsn
    extensions = config.setdefault("extensions", {})
    extensions["health_check"]["endpoint"] = f"127.0.0.1:{ports.health}"
    for ext_id, ext in extensions.items():
        if ext_id.split("/")[0] == "file_storage":
            ext["directory"] = str(workdir / "queue")
        if ext_id.split("/")[0] == "analytics":
            ext["endpoint"] = f"127.0.0.1:{ports.api}"
            ext["data_dir"] = postgres["data_dir"]
            if dsn:
                ext["dsn"] = dsn
    service = config["service"]
    for reader in service.get("telemetry", {}).get("metrics", {}).get("readers", []):
        prometheus = reader.get("pull", {}).get("exporter", {}).get("prometheus")
        if prometheus is not None:
            prometheus.update(host="127.0.0.1", port=ports.telemetry)
    for exporter_id, endpoint in (("otlp/forward", forward), ("otlp/jaeger", jaeger)):
        if endpoint:
            exporters[exporter_id] = {"endpoint": endpoint, "tls": {"insecure": True}}
            for name, pipeline in service["pipelines"].items():
                if name.split("/")[0] == "traces":
                    pipeline["exporters"].append(exporter_id)
    path = workdir / "otel-collector.yaml"
    path.write_text(
        "# Written by examples/demo.py from otel-collector.yaml; edit that file instead.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    return path


class Processes:
    """Every child process the demo started; stopped in reverse order, always."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.stopped: set[str] = set()

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child for its lifetime
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children.append((name, proc))
        return proc

    def stop(self, name: str, timeout: float = 20.0) -> None:
        self.stopped.add(name)
        for child_name, proc in self.children:
            if child_name == name and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def stop_all(self) -> None:
        for name, _ in reversed(self.children):
            self.stop(name)

    def check_alive(self) -> None:
        for name, proc in self.children:
            if name not in self.stopped and proc.poll() is not None:
                tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with code {proc.returncode}; its log ends:\n{tail}")


def wait_http(url: str, processes: Processes, *, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        processes.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what or url} did not become ready within {timeout:.0f}s")
        time.sleep(0.2)  # polling a child process's readiness, not synchronising tests


def wait_for_sink(config: Path, expected_requests: int, processes: Processes, timeout: float = 180.0) -> int:
    """Poll the sink until every request's server span is stored (the collector batches and queues)."""
    from collector.exporters.postgres.database import connect_from_config

    deadline = time.monotonic() + timeout
    stored = 0
    while time.monotonic() < deadline:
        processes.check_alive()
        with connect_from_config(config) as conn:
            row = conn.execute(
                "SELECT count(*) FROM spans WHERE service_name = 'agent-service' AND kind = 2 "
                "AND start_time > now() - interval '1 day' AND correlation_id = ANY(%s)",
                (_load_ids(config.parent),),
            ).fetchone()
        stored = int(row[0]) if row else 0
        if stored >= expected_requests:
            return stored
        time.sleep(0.5)
    return stored


JAEGER_PORTS = {"query": 16686, "query_grpc": 16685, "otlp_grpc": 14317, "otlp_http": 14318, "health": 13134}


def start_jaeger(processes: Processes, auto_ports: bool) -> tuple[str, int] | None:
    """Jaeger v2 from scripts/upstream's cache: (its UI URL, its OTLP gRPC port), or None when it is not built."""
    found = subprocess.run([str(ROOT / "scripts" / "upstream"), "--cached", "jaeger"], capture_output=True, text=True)
    if found.returncode != 0:
        console.print("[yellow]--jaeger:[/] Jaeger is not built; `scripts/upstream jaeger` builds it (needs Go).")
        return None
    ports = {name: _free_port() if auto_ports else port for name, port in JAEGER_PORTS.items()}
    config = ROOT / "deploy" / "upstream" / "jaeger" / "config.yaml"
    processes.start(
        "jaeger",
        [found.stdout.strip(), "--config", str(config)],
        {f"JAEGER_{name.upper()}_PORT": str(port) for name, port in ports.items()},
    )
    url = f"http://127.0.0.1:{ports['query']}"
    wait_http(f"{url}/api/services", processes, timeout=60, what="Jaeger")
    return url, ports["otlp_grpc"]


def print_trace_links(config: Path, jaeger_url: str) -> None:
    """The slowest outlier spans, each with its trace in Jaeger."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "collector.cli",
            "outliers",
            "--hours",
            "1",
            "--format",
            "json",
            "--config",
            str(config),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    rows = json.loads(result.stdout) if result.returncode == 0 and result.stdout.strip() else []
    for row in rows:
        link = f"{jaeger_url}/trace/{row['trace_id']}"
        console.print(f"{row['service']:<15} {row['operation']:<20} z={row['z_score']:.1f}  {link}")
    if not rows:
        console.print(f"no outliers; every trace is in Jaeger: {jaeger_url}/search")


def _load_ids(workdir: Path) -> list[str]:
    return list(json.loads((workdir / "load.json").read_text())["correlation_ids"])


def cli(config: Path, *args: str) -> None:
    # Rich sizes tables to the terminal; the child writes to a pipe, so tell it the demo's width.
    env = {**os.environ, "COLUMNS": str(max(console.width, 150))}
    result = subprocess.run(
        [sys.executable, "-m", "collector.cli", *args, "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    print(result.stdout.rstrip() or result.stderr.rstrip(), flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def running(workdir: Path) -> Iterator[Processes]:
    processes = Processes(workdir)
    try:
        yield processes
    finally:
        processes.stop_all()


def main(
    duration: float = typer.Option(20.0, help="seconds of load"),
    count: int = typer.Option(0, help="send exactly this many requests instead of --duration"),
    users: int = 12,
    tenants: int = 4,
    error_rate: float = 0.05,
    slow_rate: float = 0.03,
    dsn: str = typer.Option(None, envvar="OTEL_METRICS_DSN", help="PostgreSQL DSN instead of the embedded one"),
    forward_endpoint: str = typer.Option(
        None,
        envvar="OTEL_METRICS_FORWARD_ENDPOINT",
        help="also send traces over OTLP gRPC to host:port (Tempo, Jaeger)",
    ),
    workdir: Path = typer.Option(ROOT / ".otel-metrics" / "demo", help="config, logs, database, queues"),
    ports: str = typer.Option("standard", help="'standard' (4317, 8889, …) or 'auto' (free ports)"),
    wait: bool = typer.Option(True, help="keep everything up until Ctrl-C"),
    jaeger: bool = typer.Option(False, help="also run Jaeger v2 (scripts/upstream builds it) and link traces to it"),
) -> None:
    # A process manager's SIGTERM or a closed terminal's SIGHUP stops the demo as Ctrl-C does: Python's default
    # for them exits at once, skipping the clean-up that stops the collector and its embedded PostgreSQL.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    chosen = Ports.choose(ports == "auto")
    py = sys.executable
    with running(workdir) as processes:
        started = start_jaeger(processes, ports == "auto") if jaeger else None
        jaeger_url = started[0] if started else None
        config = write_config(workdir, chosen, dsn, forward_endpoint, f"127.0.0.1:{started[1]}" if started else None)
        console.print(f"[bold]collector[/] starting with {config} (log: {workdir / 'collector.log'})")
        processes.start("collector", [py, "-m", "collector", "--config", str(config)])
        wait_http(f"http://127.0.0.1:{chosen.health}/", processes, timeout=120, what="the collector")
        otel_env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{chosen.otlp_grpc}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_METRIC_EXPORT_INTERVAL": "2000",
            "OTEL_BSP_SCHEDULE_DELAY": "500",
        }
        for name, module, port in (
            ("tools-service", "examples.agent_service.tools_service:app", chosen.tools),
            ("agent-service", "examples.agent_service.app:app", chosen.agent),
        ):
            processes.start(
                name,
                [py, "-m", "uvicorn", module, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
                {**otel_env, "OTEL_SERVICE_NAME": name, "TOOLS_URL": f"http://127.0.0.1:{chosen.tools}"},
            )
        wait_http(f"http://127.0.0.1:{chosen.agent}/healthz", processes, what="agent-service")
        wait_http(f"http://127.0.0.1:{chosen.tools}/docs", processes, what="tools-service")

        plan = Plan(
            f"http://127.0.0.1:{chosen.agent}",
            users,
            tenants,
            error_rate,
            slow_rate,
            600,
            None if count else duration,
            count or None,
        )
        result = asyncio.run(run_load(plan, console=console))
        summary = {
            **asdict(result),
            "by_status": dict(result.by_status),
            "by_tenant": dict(result.by_tenant),
            "ok": result.ok,
            "failed": result.failed,
            "ports": asdict(chosen),
            "jaeger": jaeger_url,
        }
        (workdir / "load.json").write_text(json.dumps(summary, indent=1))
        console.print(
            f"sent {result.sent} requests: {result.ok} ok, {result.failed} failed, "
            f"{result.echoed_ok} echoed their correlation id"
        )
        # The services export every 500 ms; wait for the sink while they still run, so no request is in flight
        # when they stop.
        stored = wait_for_sink(config, result.sent, processes)
        processes.stop("agent-service")
        processes.stop("tools-service")
        if stored < result.sent:
            console.print(
                f"[yellow]warning:[/] after 180 s the sink holds {stored} of {result.sent} requests; "
                f"see {workdir / 'collector.log'}"
            )
        else:
            console.print(f"the sink holds {stored} of {result.sent} requests")

        console.rule("performance (last hour)")
        cli(config, "report", "--hours", "1")
        console.rule("cost by model")
        cli(config, "costs", "--by", "model", "--hours", "1")
        console.rule("cost by tenant")
        cli(config, "costs", "--by", "tenant", "--hours", "1")
        console.rule("alerts")
        cli(config, "alerts", "list")
        if jaeger_url:
            console.rule("outlier spans, with their traces in Jaeger")
            print_trace_links(config, jaeger_url)

        ui = f"http://127.0.0.1:{chosen.api}"
        a_request = next(iter(result.requests), "")
        urls = "\n".join(
            [
                f"web UI                  {ui}/",
                f"a request's traces      {ui}/traces?correlation_id={a_request}",
                f"Prometheus exposition   http://127.0.0.1:{chosen.prometheus}/metrics",
                f"collector telemetry     http://127.0.0.1:{chosen.telemetry}/metrics",
                f"health                  http://127.0.0.1:{chosen.health}/",
                f"analytics API           http://127.0.0.1:{chosen.api}/api/v1/summary",
                f"API schema              http://127.0.0.1:{chosen.api}/api/v1/openapi.json",
                f"OTLP in                 grpc 127.0.0.1:{chosen.otlp_grpc}  http http://127.0.0.1:{chosen.otlp_http}",
                f"reports                 otel-metrics report --config {config}",
            ]
            + (
                [f"Jaeger                  {jaeger_url}/search  (API: {jaeger_url}/api/traces/<trace id>)"]
                if jaeger_url
                else []
            )
        )
        console.print(Panel(urls, title="still running", expand=False))
        if wait:
            console.print("Ctrl-C (or SIGTERM) stops every process the demo started.")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    processes.check_alive()
                    time.sleep(1)
    console.print("stopped.")


if __name__ == "__main__":
    typer.run(main)
