"""Run the real upstream programs (built by ``scripts/upstream``) and our collector as processes, on loopback ports
picked free, with a deadline on every wait. A module of its own (not conftest) so test files import it by name."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_SCRIPT = ROOT / "scripts" / "upstream"
OUR_COLLECTOR = ROOT / "tests" / "support" / "collector_proc.py"
T = TypeVar("T")


def upstream_binary(name: str) -> Path:
    """The cached binary of ``name`` (otelcol, jaeger), built on first use; skips where it cannot be built."""
    cached = subprocess.run([str(UPSTREAM_SCRIPT), "--cached", name], capture_output=True, text=True)
    if cached.returncode == 0:
        return Path(cached.stdout.strip())
    if shutil.which("go") is None:
        pytest.skip(
            f"upstream {name} is not built and 'go' is not on PATH (install Go 1.26; scripts/upstream builds it)"
        )
    built = subprocess.run([str(UPSTREAM_SCRIPT), name], capture_output=True, text=True, timeout=3600)
    if built.returncode != 0:
        pytest.fail(f"scripts/upstream {name} failed:\n{built.stderr[-4000:]}")
    return Path(built.stdout.strip())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], T | None], what: str, timeout: float = 60.0, *, alive: Callable[[], None] = lambda: None
) -> T:
    """Polls ``predicate`` (another process's progress) until it returns a truthy value, or fails at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        alive()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Proc:
    """One child process with its log file; ``stop`` is SIGTERM then SIGKILL, ``kill9`` is ``kill -9``."""

    def __init__(
        self, name: str, args: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.name, self.args, self.log, self.env, self.cwd = name, args, log, env, cwd
        self.popen: subprocess.Popen[str] | None = None

    def start(self, stdout: int | None = None) -> Proc:
        with self.log.open("a") as log:  # the child keeps its own copy of the descriptor
            self.popen = subprocess.Popen(
                self.args,
                stdout=stdout if stdout is not None else log,
                stderr=log,
                text=True,
                env={**os.environ, **(self.env or {})},
                cwd=self.cwd,
            )
        return self

    def check_alive(self) -> None:
        assert self.popen is not None
        if self.popen.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def kill9(self) -> None:
        assert self.popen is not None
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge as the Collector merges several --config sources: maps merge, everything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def telemetry(port: int) -> dict[str, Any]:
    """A ``service.telemetry`` whose metrics (otelcol_receiver_accepted_spans, ...) are served on 127.0.0.1:port."""
    reader = {"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": port}}}}
    return {"metrics": {"level": "normal", "readers": [reader]}, "logs": {"level": "warn"}}


def metric_sum(port: int, name: str, **labels: str) -> float:
    """Sum of a counter (with or without the ``_total`` suffix) over its series on a Prometheus exposition at
    127.0.0.1:port (0.0 when absent or unreachable)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        head = line.split("{", 1)[0].split(" ", 1)[0]
        if head in (name, f"{name}_total") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@contextlib.contextmanager
def upstream_collector(
    binary: Path,
    workdir: Path,
    *configs: dict[str, Any] | Path,
    ready_port: int,
    name: str = "otelcol",
    env: dict[str, str] | None = None,
) -> Iterator[Proc]:
    """The upstream Collector with ``configs`` merged in order (files unchanged, dicts as YAML beside them),
    started and listening on ``ready_port``."""
    args = [str(binary)]
    for index, config in enumerate(configs):
        if isinstance(config, dict):
            path = workdir / f"{name}-{index}.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            config = path
        args += ["--config", str(config)]
    proc = Proc(name, args, workdir / f"{name}.log", env=env, cwd=workdir).start()
    try:
        wait_for(lambda: port_open(ready_port), f"{name} to listen on {ready_port}", 60, alive=proc.check_alive)
        yield proc
    finally:
        proc.stop()


def start_our_collector(config: dict[str, Any], workdir: Path, name: str) -> tuple[Proc, int]:
    """Our collector as a process (tests/support/collector_proc.py); returns it and its bound OTLP gRPC port."""
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    proc = Proc(name, [sys.executable, str(OUR_COLLECTOR), str(path)], workdir / f"{name}.log", cwd=ROOT)
    proc.start(stdout=subprocess.PIPE)
    assert proc.popen is not None and proc.popen.stdout is not None
    line = proc.popen.stdout.readline()  # blocks until the service started (or the process died)
    if not line:
        proc.popen.wait(10)
        pytest.fail(f"{name} did not start:\n{proc.log_tail()}")
    return proc, int(json.loads(line)["grpc_port"])
