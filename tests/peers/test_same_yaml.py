"""Same YAML, same meaning: the upstream Collector's own ``validate`` accepts the scale-out config unchanged and our
shipped configs once our own components are taken out, so "the schema is upstream's" is tested, not asserted."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# Components that exist only in otel-metrics. `redaction` shares upstream's name and keys, but its defaults differ
# (ours keeps every key and masks secrets; upstream's allow-lists keys), so the same YAML would not mean the same.
OURS = {
    "processors": {"correlation", "business", "cost", "redaction"},
    "exporters": {"postgres"},
    "extensions": {"analytics"},
}
OUR_KEYS = {("processors", "batch"): {"flush_when_idle"}}
# A pipeline left without an exporter is invalid upstream; `debug` stands in where only our postgres exporter was.
STAND_IN_EXPORTER = "debug"


def _validate(otelcol: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(otelcol), "validate", "--config", str(config)], capture_output=True, text=True, timeout=120
    )


def strip_ours(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without otel-metrics' own components, keys and references to them."""
    out = {kind: dict(section or {}) for kind, section in config.items() if kind != "service"}
    for kind, types in OURS.items():
        out[kind] = {cid: c for cid, c in out.get(kind, {}).items() if cid.split("/")[0] not in types}
    for (kind, type_), keys in OUR_KEYS.items():
        for cid, component in out.get(kind, {}).items():
            if cid.split("/")[0] == type_ and isinstance(component, dict):
                out[kind][cid] = {k: v for k, v in component.items() if k not in keys}
    service = dict(config["service"])
    service["extensions"] = [e for e in service.get("extensions", []) if e in out.get("extensions", {})]
    pipelines = {}
    for name, pipeline in service["pipelines"].items():
        kept = {
            role: [cid for cid in ids if cid.split("/")[0] not in OURS.get(role, set())]
            for role, ids in pipeline.items()
        }
        if not kept.get("exporters"):
            kept["exporters"] = [STAND_IN_EXPORTER]
            out.setdefault("exporters", {})[STAND_IN_EXPORTER] = {}
        pipelines[name] = kept
    service["pipelines"] = pipelines
    return {**out, "service": service}


def test_scale_out_config_validates_unchanged(otelcol: Path) -> None:
    result = _validate(otelcol, ROOT / "deploy" / "otelcol-contrib" / "config.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("shipped", ["otel-collector.yaml", "deploy/sink/otel-collector.yaml"])
def test_our_shipped_config_validates_upstream_without_our_components(
    otelcol: Path, shipped: str, workdir: Path
) -> None:
    config = yaml.safe_load((ROOT / shipped).read_text())
    stripped = strip_ours(config)
    # What is left is most of the file: the test would be empty if stripping took everything.
    assert {"otlp"} <= set(stripped["receivers"]) and {"memory_limiter", "batch"} <= set(stripped["processors"])
    path = workdir / "stripped.yaml"
    path.write_text(yaml.safe_dump(stripped, sort_keys=False))
    result = _validate(otelcol, path)
    assert result.returncode == 0, f"{shipped}:\n{result.stdout}{result.stderr}"


def test_upstream_validate_rejects_what_is_only_ours(otelcol: Path, workdir: Path) -> None:
    """The check can fail: upstream names our own key and component as errors."""
    config = yaml.safe_load((ROOT / "otel-collector.yaml").read_text())
    stripped = strip_ours(config)
    stripped["processors"]["batch"]["flush_when_idle"] = True
    path = workdir / "ours.yaml"
    path.write_text(yaml.safe_dump(stripped, sort_keys=False))
    result = _validate(otelcol, path)
    assert result.returncode != 0
    assert "flush_when_idle" in result.stdout + result.stderr
