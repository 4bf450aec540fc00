"""opentelemetry-instrument in a real subprocess: an app that never imports us gets our processors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "auto_instrumented" / "app.py"


def _instrument() -> str:
    instrument = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    assert instrument, "opentelemetry-instrument is installed with opentelemetry-instrumentation"
    return instrument


def _instrument_env(receiver: Any, *, select: bool = True, **extra: str) -> dict[str, str]:
    """This environment without OTEL_*, exporting traces to ``receiver`` (metrics off), our distro selected."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_METRICS_EXPORTER="none",
        # These apps call no LLM: the LLM instrumentations of the dev extra would only slow their start-up.
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai,anthropic,langchain",
        **extra,
    )
    if select:
        env.update(OTEL_PYTHON_DISTRO="otel_metrics", OTEL_PYTHON_CONFIGURATOR="otel_metrics")
    return env


@pytest.mark.parametrize("select_explicitly", [True, False])
def test_opentelemetry_instrument_installs_our_processors(receiver: Any, select_explicitly: bool) -> None:
    instrument = _instrument()
    env = _instrument_env(
        receiver, select=select_explicitly, OTEL_SERVICE_NAME="auto-demo", REQUEST_ID="auto-req-7", TENANT="acme"
    )
    if not select_explicitly:
        # with the upstream distro also installed, entry-point order decides; ours must at least be offered
        from importlib.metadata import entry_points

        names = [ep.name for ep in entry_points(group="opentelemetry_configurator")]
        if names[0] != "otel_metrics":
            pytest.skip(f"entry-point order puts {names[0]} first here; selection needs OTEL_PYTHON_CONFIGURATOR")
    proc = subprocess.run(
        [instrument, sys.executable, str(APP)], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert "answer to what is OTLP?" in proc.stdout
    store = receiver.store
    chat = store.span_named("chat gpt-4o")
    handle = store.span_named("handle_request")
    assert chat.resource["service.name"] == "auto-demo"
    for span in (chat, handle):
        assert span.attributes["correlation.id"] == "auto-req-7"
        assert span.attributes["tenant.id"] == "acme"
    from processors.cost import default_price_table

    expected = default_price_table().llm_cost("gpt-4o", 1000, 500)
    assert expected is not None
    assert chat.attributes["cost.usd"] == pytest.approx(float(expected))
    assert chat.attributes["llm.api_key"] == "[REDACTED]"
    assert "cost.usd" not in handle.attributes


def test_quickstart_example_exports_to_a_real_receiver(receiver: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "acme: correlation.id=" in proc.stdout
    spans = receiver.store.wait_for(
        lambda: (
            len([s for s in receiver.store.spans() if s.name == "SupportAgent.answer"]) == 2
            and [s for s in receiver.store.spans() if s.name == "SupportAgent.answer"]
        )
    )
    assert {s.attributes["tenant.id"] for s in spans} == {"acme", "globex"}
    assert all(s.attributes["result.success"] is True for s in spans)
    calls = receiver.store.wait_for(lambda: [s for s in receiver.store.spans() if s.name == "chat gpt-4o-mini"])
    assert {(s.parent_span_id, s.attributes["tenant.id"]) for s in calls} == {
        (s.span_id, s.attributes["tenant.id"]) for s in spans
    }
    assert all(s.attributes["cost.usd"] > 0 for s in calls)
    assert len({s.attributes["correlation.id"] for s in spans}) == 2
    costs = receiver.store.wait_for(lambda: receiver.store.points("cost.usd"))
    assert {p.attributes.get("tenant.id") for p in costs} == {"acme", "globex"}


_UVICORN_APP = """
import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/work")
async def work() -> dict:
    return {"done": True}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[-1]), log_level="warning")
"""


def test_sigterm_flushes_an_auto_instrumented_uvicorn_app(receiver: Any, sigterm_after_request: Any) -> None:
    """uvicorn re-raises SIGTERM after draining: without the distro's handler the process dies before atexit and
    the last requests' spans are lost."""
    import signal

    pytest.importorskip("opentelemetry.instrumentation.fastapi")
    env = _instrument_env(receiver, OTEL_SERVICE_NAME="auto-sigterm")
    returncode, err = sigterm_after_request(_UVICORN_APP, [], env, prefix=(_instrument(),))
    assert returncode == -signal.SIGTERM, err  # still dies of the signal, after flushing
    store = receiver.store
    found = store.wait_for(
        lambda: [s for s in store.spans() if s.resource.get("service.name") == "auto-sigterm" and s.name == "GET /work"]
    )
    assert found, err


def test_sigterm_handler_is_installed_only_over_the_default() -> None:
    import signal

    from otel_metrics._internal.config import flush_on_sigterm as _flush_on_sigterm

    original = signal.getsignal(signal.SIGTERM)

    def apps_own(signum: int, frame: Any) -> None: ...

    try:
        signal.signal(signal.SIGTERM, apps_own)
        _flush_on_sigterm()
        assert signal.getsignal(signal.SIGTERM) is apps_own
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _flush_on_sigterm()
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, apps_own)
    finally:
        signal.signal(signal.SIGTERM, original)
