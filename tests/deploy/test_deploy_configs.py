"""deploy/: Prometheus rules pass promtool, the upstream Collector config uses only contrib components,
Grafana dashboards are well-formed and take their data sources from variables."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONTRIB_LIST = ROOT.parent / "shared" / "otelcol-contrib-components.txt"
promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(promtool is None, reason="Debian's promtool is not installed")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert promtool is not None
    return subprocess.run([promtool, *args], capture_output=True, text=True, cwd=DEPLOY, timeout=60)


@needs_promtool
def test_alert_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", "prometheus/rules/otel-metrics.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_alert_rules_unit_tests_pass() -> None:
    result = _promtool("test", "rules", "prometheus/tests/otel-metrics.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize("config", ["prometheus/prometheus.yml", "compose/prometheus.yml"])
def test_prometheus_configs_are_valid(config: str) -> None:
    result = _promtool("check", "config", "--syntax-only", config)
    assert result.returncode == 0, result.stdout + result.stderr


def _contrib_components() -> set[tuple[str, str]]:
    if not CONTRIB_LIST.exists():
        pytest.skip(f"{CONTRIB_LIST} is not beside the checkout")
    kinds = set()
    for line in CONTRIB_LIST.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            kind, type_ = line.split()
            kinds.add((kind, type_))
    return kinds


def test_upstream_config_uses_only_contrib_components_and_defined_ids() -> None:
    available = _contrib_components()
    config = yaml.safe_load((DEPLOY / "otelcol-contrib" / "config.yaml").read_text())
    singular = {
        "receivers": "receiver",
        "processors": "processor",
        "exporters": "exporter",
        "connectors": "connector",
        "extensions": "extension",
    }
    for section, kind in singular.items():
        for component_id in config.get(section, {}):
            type_ = component_id.split("/")[0]
            assert (kind, type_) in available, f"{section}.{component_id}: {kind} {type_!r} is not in otelcol-contrib"
    for ext in config["service"]["extensions"]:
        assert ext in config["extensions"]
    connectors = set(config.get("connectors", {}))
    for name, pipeline in config["service"]["pipelines"].items():
        for role, section in (("receivers", "receivers"), ("processors", "processors"), ("exporters", "exporters")):
            for component_id in pipeline.get(role, []):
                defined = set(config.get(section, {})) | (connectors if role != "processors" else set())
                assert component_id in defined, f"service.pipelines.{name}.{role}: {component_id} is not defined"
    # Every queue that names a storage points at a defined file_storage extension.
    for text in re.findall(r"storage: (\S+)", (DEPLOY / "otelcol-contrib" / "config.yaml").read_text()):
        assert text in config["extensions"]


def _dashboards() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, json.loads(p.read_text())) for p in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))]


def test_dashboards_take_every_data_source_from_a_variable() -> None:
    dashboards = _dashboards()
    assert {name for name, _ in dashboards} == {"analytics.json", "service-overview.json"}
    for name, dash in dashboards:
        variables = {v["name"] for v in dash["templating"]["list"]}
        ds_variables = {v["name"] for v in dash["templating"]["list"] if v["type"] == "datasource"}
        assert ds_variables, name
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in dash["panels"]:
            for holder in [panel, *panel["targets"]]:
                uid = holder["datasource"]["uid"]
                assert uid.startswith("${") and uid[2:-1] in ds_variables, f"{name}/{panel['title']}: {uid}"
            for target in panel["targets"]:
                query = target.get("expr") or target.get("rawSql") or ""
                for var in re.findall(r"\$(\w+)", query):
                    assert var.startswith("__") or var in variables, f"{name}/{panel['title']}: ${var} undefined"


def test_service_overview_covers_red_cost_tokens_and_exemplars() -> None:
    dash = dict(_dashboards())["service-overview.json"]
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    for metric in (
        "traces_span_metrics_calls_total",
        "traces_span_metrics_duration_milliseconds_bucket",
        "cost_usd_total",
        "gen_ai_client_token_usage_sum",
        "otelcol_exporter_queue_size",
    ):
        assert metric in exprs
    quantiles = {
        t["expr"].split(",")[0] for p in dash["panels"] for t in p["targets"] if "histogram_quantile" in t["expr"]
    }
    assert {"histogram_quantile(0.5", "histogram_quantile(0.95", "histogram_quantile(0.99"} <= quantiles
    assert any(t.get("exemplar") for p in dash["panels"] for t in p["targets"])
