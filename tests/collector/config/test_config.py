"""Config loading: strict decoding, near-miss suggestions, env expansion, references, all errors at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from collector.component import ConnectorFactory, ExporterFactory
from collector.components import Registry
from collector.config.loader import load_config, merge_registries, parse_config
from collector.confmap import ConfigError
from processors.pipeline import ComponentID, Duration, Signal


@dataclass
class QueueConfig:
    enabled: bool = True
    queue_size: int = 1000
    storage: str | None = None


FIVE_SECONDS = Duration(5.0)
FIVE_MINUTES = Duration(300.0)


@dataclass
class RetryConfig:
    initial_interval: Duration = FIVE_SECONDS
    max_elapsed_time: Duration = FIVE_MINUTES


@dataclass
class FakeOTLPExporterConfig:
    endpoint: str = ""
    compression: Literal["gzip", "none", "zstd"] = "gzip"
    headers: dict[str, str] = field(default_factory=dict)
    sending_queue: QueueConfig = field(default_factory=lambda: QueueConfig(queue_size=5000))
    retry_on_failure: RetryConfig = field(default_factory=RetryConfig)
    timeout: Duration = FIVE_SECONDS
    ratio: float = 1.0

    def validate(self) -> list[str]:
        return [] if self.endpoint else ["endpoint: must be set"]


def _components(test_components: Registry) -> Registry:
    extra = Registry(
        receivers={},
        processors={},
        exporters={"otlp": ExporterFactory("otlp", FakeOTLPExporterConfig, lambda s, c: None)},  # type: ignore
        connectors={},
        extensions={},
    )
    return merge_registries(test_components, extra)


def _parse(raw: dict[str, Any], test_components: Registry, env: dict[str, str] | None = None) -> Any:
    return parse_config(raw, _components(test_components), env or {}, include_builtin=False)


def _errors(raw: dict[str, Any], test_components: Registry, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _parse(raw, test_components, env)
    return info.value.errors


def _base(**exporter: Any) -> dict[str, Any]:
    return {
        "receivers": {"otlp": None},
        "exporters": {"otlp/tempo": {"endpoint": "tempo:4317", **exporter}},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["otlp/tempo"]}}},
    }


def test_valid_config_decodes_into_dataclasses_with_defaults(test_components: Registry) -> None:
    config = _parse(
        _base(sending_queue={"queue_size": 10}, timeout="1m30s", retry_on_failure={"initial_interval": "200ms"}),
        test_components,
    )
    exporter = config.exporters[ComponentID("otlp", "tempo")]
    assert exporter.sending_queue == QueueConfig(enabled=True, queue_size=10, storage=None)
    assert exporter.timeout == 90.0 and exporter.retry_on_failure.initial_interval == pytest.approx(0.2)
    assert exporter.retry_on_failure.max_elapsed_time == 300.0
    # `otlp:` with nothing under it: both protocols with upstream's defaults
    receiver = config.receivers[ComponentID("otlp")]
    assert receiver.protocols.grpc.endpoint == "localhost:4317"
    assert receiver.protocols.http.endpoint == "localhost:4318"
    pipeline = next(iter(config.pipelines.values()))
    assert pipeline.exporters == [ComponentID("otlp", "tempo")]


def test_unknown_key_names_full_path_and_near_miss(test_components: Registry) -> None:
    errors = _errors(_base(sending_queue={"queue_sise": 10}), test_components)
    assert errors == ["exporters.otlp/tempo.sending_queue.queue_sise: unknown key (did you mean 'queue_size'?)"]


def test_all_errors_reported_at_once(test_components: Registry) -> None:
    raw = _base(
        endpoint="",
        compression="gzipp",
        timeout="5 seconds",
        ratio="high",
        headers=["a"],
        sending_queue={"enabled": "yes", "queue_size": 1.5},
    )
    raw["receivers"]["otlp"] = {"protocols": {"grcp": {}}}
    raw["service"]["pipelines"]["traces"]["processors"] = ["batch"]
    errors = _errors(raw, test_components)
    expected = [
        "receivers.otlp.protocols.grcp: unknown key (did you mean 'grpc'?)",
        "receivers.otlp: protocols: must specify at least one protocol (grpc or http)",
        "exporters.otlp/tempo.compression: expected one of 'gzip', 'none', 'zstd', got string 'gzipp'"
        " (did you mean 'gzip'?)",
        "exporters.otlp/tempo.timeout: expected a duration such as '5s', '200ms' or '1m30s', got '5 seconds'",
        "exporters.otlp/tempo.ratio: expected a number, got string 'high'",
        "exporters.otlp/tempo.headers: expected a mapping, got a list",
        "exporters.otlp/tempo.sending_queue.enabled: expected a bool, got string 'yes'",
        "exporters.otlp/tempo.sending_queue.queue_size: expected an integer, got float (1.5)",
        "exporters.otlp/tempo: endpoint: must be set",
        "service.pipelines.traces.processors: references processor 'batch' which is not configured under 'processors'",
    ]
    assert sorted(errors) == sorted(expected)


def test_unknown_type_undefined_reference_and_unsupported_signal(test_components: Registry) -> None:
    raw = _base()
    raw["exporters"]["otlpp/x"] = None
    raw["processors"] = {"tag": None}
    raw["connectors"] = {"spancount": None}
    raw["service"]["pipelines"] = {
        "traces": {"receivers": ["otlp"], "exporters": ["otlp/tmpo", "otlpp/x"]},
        "metrics": {"receivers": ["otlp"], "processors": ["tag"], "exporters": ["spancount"]},
        "logz": {"receivers": ["otlp"], "exporters": ["otlp/tempo"]},
    }
    raw["service"]["extensions"] = ["health_check"]
    errors = _errors(raw, test_components)
    assert "exporters.otlpp/x: unknown exporter type 'otlpp' (did you mean 'otlp'?) (known: collect, otlp)" in errors
    assert (
        "service.pipelines.traces.exporters: references exporter 'otlp/tmpo' which is not configured under"
        " 'exporters' (did you mean 'otlp/tempo'?)" in errors
    )
    assert not any("otlpp/x" in e and "references" in e for e in errors)  # reported once, as unknown type
    assert any(e.startswith("service.pipelines.logz: pipeline id must be") and "'logs'" in e for e in errors)
    assert "service.extensions: references extension 'health_check' which is not configured under 'extensions'" in (
        errors
    )
    assert (
        "connectors.spancount: a connector must be an exporter in one pipeline and a receiver in another"
        " (used only as exporter)" in errors
    )


def test_connector_route_must_be_supported(test_components: Registry) -> None:
    raw = _base()
    raw["connectors"] = {"spancount": None}
    raw["service"]["pipelines"] = {
        "logs": {"receivers": ["otlp"], "exporters": ["spancount"]},
        "traces": {"receivers": ["spancount"], "exporters": ["otlp/tempo"]},
    }
    errors = _errors(raw, test_components)
    assert errors == ["connectors.spancount: used as logs->traces, but it supports only traces->metrics"]


def test_component_not_supporting_signal(test_components: Registry) -> None:
    metrics_only = Registry(
        receivers={},
        processors={},
        connectors={},
        extensions={},
        exporters={
            "prom": ExporterFactory(
                "prom",
                QueueConfig,
                lambda s, c: None,  # type: ignore
                signals=frozenset({Signal.METRICS}),
            )
        },
    )
    raw = _base()
    raw["exporters"]["prom"] = None
    raw["service"]["pipelines"]["traces"]["exporters"] = ["prom"]
    with pytest.raises(ConfigError) as info:
        parse_config(raw, merge_registries(_components(test_components), metrics_only), {}, include_builtin=False)
    assert info.value.errors == [
        "service.pipelines.traces.exporters: exporter 'prom' does not support traces (it supports: metrics)"
    ]


def test_env_expansion_with_defaults_and_types(test_components: Registry) -> None:
    raw = _base(
        endpoint="${env:TEMPO_HOST}:${env:TEMPO_PORT:-4317}",
        sending_queue={"queue_size": "${env:QUEUE_SIZE}", "storage": "${env:STORAGE:-file_storage}"},
        headers={"x-price": "$$5", "x-token": "Bearer ${env:TOKEN}"},
    )
    config = _parse(raw, test_components, {"TEMPO_HOST": "tempo", "QUEUE_SIZE": "250", "TOKEN": "t0k"})
    exporter = config.exporters[ComponentID("otlp", "tempo")]
    assert exporter.endpoint == "tempo:4317"
    assert exporter.sending_queue.queue_size == 250  # a whole-value reference is re-read as YAML
    assert exporter.sending_queue.storage == "file_storage"
    assert exporter.headers == {"x-price": "$5", "x-token": "Bearer t0k"}
    assert config.warnings == []


def test_unset_env_var_warns_and_then_fails_typing(test_components: Registry) -> None:
    raw = _base(sending_queue={"queue_size": "${env:QUEUE_SIZE}"})
    errors = _errors(raw, test_components)
    assert errors == ["exporters.otlp/tempo.sending_queue.queue_size: expected an integer, got string ''"]


def test_yaml_syntax_error_names_file_line_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("receivers:\n  otlp:\n    protocols: [grpc\nservice: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, include_builtin=False)
    (error,) = info.value.errors
    assert error.startswith(f"{path}:4:") and "YAML syntax error" in error


def test_missing_file_and_top_level_typos(tmp_path: Path, test_components: Registry) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")
    raw = _base()
    raw["exporter"] = {}
    raw["service"]["pipeline"] = {}
    errors = _errors(raw, test_components)
    assert "exporter: unknown top-level key (did you mean 'exporters'?)" in errors
    assert "service.pipeline: unknown key (did you mean 'pipelines'?)" in errors


def test_telemetry_endpoint_forms(test_components: Registry) -> None:
    raw = _base()
    assert _parse(raw, test_components).telemetry.metrics.endpoint() == "127.0.0.1:8888"
    raw["service"]["telemetry"] = {"metrics": {"address": "0.0.0.0:9999"}}
    assert _parse(raw, test_components).telemetry.metrics.endpoint() == "0.0.0.0:9999"
    raw["service"]["telemetry"] = {
        "metrics": {"readers": [{"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": 18888}}}}]}
    }
    assert _parse(raw, test_components).telemetry.metrics.endpoint() == "127.0.0.1:18888"
    raw["service"]["telemetry"] = {"metrics": {"level": "none"}}
    assert _parse(raw, test_components).telemetry.metrics.endpoint() is None


def test_only_listed_protocols_are_enabled(test_components: Registry) -> None:
    raw = _base()
    raw["receivers"]["otlp"] = {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}
    protocols = _parse(raw, test_components).receivers[ComponentID("otlp")].protocols
    assert protocols.grpc is None and protocols.http.endpoint == "127.0.0.1:0"
    assert protocols.http.max_request_body_size == 20 * 1024 * 1024
    raw["receivers"]["otlp"] = {"protocols": {"grpc": None}}
    protocols = _parse(raw, test_components).receivers[ComponentID("otlp")].protocols
    assert protocols.http is None and protocols.grpc.endpoint == "localhost:4317"


def test_connector_cycle_is_rejected(test_components: Registry) -> None:
    forward = Registry(
        receivers={},
        processors={},
        exporters={},
        extensions={},
        connectors={
            "forward": ConnectorFactory(
                "forward",
                QueueConfig,
                lambda s, c, n: None,  # type: ignore[arg-type,return-value]
                routes=frozenset({(Signal.TRACES, Signal.TRACES)}),
            )
        },
    )
    raw = _base()
    raw["connectors"] = {"forward": None}
    raw["service"]["pipelines"] = {
        "traces": {"receivers": ["otlp", "forward"], "exporters": ["otlp/tempo", "forward/x"]},
        "traces/x": {"receivers": ["forward/x"], "exporters": ["forward"]},
    }
    raw["connectors"]["forward/x"] = None
    with pytest.raises(ConfigError) as info:
        parse_config(raw, merge_registries(_components(test_components), forward), {}, include_builtin=False)
    assert info.value.errors == [
        "service.pipelines: connectors form a cycle (traces -[forward/x]-> traces/x -[forward]-> traces);"
        " data would loop forever"
    ]


def test_unused_components_are_warnings_not_errors(test_components: Registry) -> None:
    raw = _base()
    raw["exporters"]["otlp/unused"] = {"endpoint": "x:1"}
    raw["extensions"] = {"health_check": None}
    config = _parse(raw, test_components)
    assert config.warnings == [
        "exporters.otlp/unused: configured but not used in any pipeline",
        "extensions.health_check: configured but not listed in service.extensions",
    ]


def test_upstream_only_component_is_named_as_such(test_components: Registry) -> None:
    raw = _base()
    raw["processors"] = {"tail_sampling": {"policies": []}}
    errors = _errors(raw, test_components)
    assert errors == [
        "processors.tail_sampling: processor type 'tail_sampling' is an upstream Collector component that"
        " otel-metrics does not provide (available: tag)"
    ]


def test_file_errors_carry_line_and_column(tmp_path: Path, test_components: Registry) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "receivers:\n"
        "  otlp:\n"
        "exporters:\n"
        "  otlp/tempo:\n"
        "    endpoint: tempo:4317\n"
        "    sending_queue:\n"
        "      queue_sise: 10\n"
        "service:\n"
        "  pipelines:\n"
        "    traces:\n"
        "      receivers: [otlp]\n"
        "      exporters: [otlp/tempo, otlp/jaeger]\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, _components(test_components), {}, include_builtin=False)
    assert info.value.errors == [
        f"{path}:7:7: exporters.otlp/tempo.sending_queue.queue_sise: unknown key (did you mean 'queue_size'?)",
        f"{path}:12:7: service.pipelines.traces.exporters: references exporter 'otlp/jaeger' which is not"
        " configured under 'exporters'",
    ]
