"""Load, expand, decode and validate a collector config, reporting every problem at once.

Order (as upstream's otelcol does): parse YAML (syntax errors name file:line:col), expand ``${env:…}``,
decode each component's section into its factory's config dataclass, check the service section (pipeline
ids, references, signal support, connector routes), then run each config's ``validate()``. Nothing here
binds a port.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from collector.components import KINDS, Registry, merge_registries, registry
from collector.config.model import Config, PipelineID, PipelineRefs, TelemetryConfig
from collector.confmap.decode import decode, did_you_mean
from collector.confmap.expand import expand_env
from collector.confmap.locate import key_marks, locate
from collector.confmap.sections import ConfigError, decode_section, read_yaml
from processors.pipeline import ComponentID, Signal

__all__ = ["ConfigError", "load_config", "merge_registries", "parse_config"]

_TOP_LEVEL = (*KINDS, "service")
_SERVICE_KEYS = ("extensions", "pipelines", "telemetry")
_PIPELINE_KEYS = ("receivers", "processors", "exporters")
# Types the upstream otelcol-contrib distribution has (a relevant subset): a config copied from upstream that
# names one we do not implement gets told so, rather than only "unknown".
_UPSTREAM_TYPES = {
    "receivers": frozenset(["otlp", "prometheus", "jaeger", "zipkin", "hostmetrics", "filelog", "kafka", "nop"]),
    "processors": frozenset(
        [
            "batch",
            "memory_limiter",
            "attributes",
            "resource",
            "filter",
            "transform",
            "redaction",
            "tail_sampling",
            "probabilistic_sampler",
            "k8sattributes",
            "resourcedetection",
            "groupbytrace",
            "span",
            "cumulativetodelta",
            "deltatocumulative",
        ]
    ),
    "exporters": frozenset(
        [
            "otlp",
            "otlphttp",
            "otlp_grpc",
            "otlp_http",
            "debug",
            "nop",
            "prometheus",
            "prometheusremotewrite",
            "loadbalancing",
            "kafka",
            "file",
            "zipkin",
        ]
    ),
    "connectors": frozenset(
        ["spanmetrics", "servicegraph", "forward", "count", "routing", "exceptions", "failover", "roundrobin"]
    ),
    "extensions": frozenset(
        [
            "health_check",
            "pprof",
            "zpages",
            "file_storage",
            "bearertokenauth",
            "basicauth",
            "oidc",
            "headers_setter",
            "opamp",
        ]
    ),
}
_SINGULAR = {
    "receivers": "receiver",
    "processors": "processor",
    "exporters": "exporter",
    "connectors": "connector",
    "extensions": "extension",
}


def load_config(
    path: str | os.PathLike[str],
    components: Registry | None = None,
    env: Mapping[str, str] | None = None,
    *,
    include_builtin: bool = True,
) -> Config:
    """Read ``path`` and return the validated config, or raise ConfigError listing every problem.

    ``components`` adds factories to the built-in registry (tests inject their own components this way);
    ``include_builtin=False`` uses ``components`` alone.
    """
    source = str(path)
    raw, text = read_yaml(path)
    try:
        return parse_config(raw, components, env, source, include_builtin=include_builtin)
    except ConfigError as exc:
        marks = key_marks(text)
        raise ConfigError([locate(e, marks, source) for e in exc.errors], source) from None


def parse_config(
    raw: Any,
    components: Registry | None = None,
    env: Mapping[str, str] | None = None,
    source: str = "config",
    *,
    include_builtin: bool = True,
) -> Config:
    """Validate an already-parsed YAML tree (a dict) and return the Config; raise ConfigError otherwise."""
    empty = Registry(receivers={}, processors={}, exporters={}, connectors={}, extensions={})
    try:
        builtin = registry() if include_builtin else empty
    except Exception as exc:  # a component module that fails to import: say which, not a traceback
        raise ConfigError([f"cannot load the collector's components: {type(exc).__name__}: {exc}"], source) from exc
    reg = merge_registries(builtin, components)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"top level: expected a mapping, got {type(raw).__name__}"], source)
    tree, warnings = expand_env(raw, env)
    errors: list[str] = []
    config = Config(warnings=warnings, components=reg)
    # Ids written under a section even if their type is unknown: references to them are not errors twice.
    declared: set[tuple[str, ComponentID]] = set()

    for key in tree:
        if key not in _TOP_LEVEL:
            errors.append(f"{key}: unknown top-level key{did_you_mean(str(key), _TOP_LEVEL)}")

    for kind in KINDS:
        section = tree.get(kind)
        if section is None:
            continue
        if not isinstance(section, dict):
            errors.append(f"{kind}: expected a mapping of component ids, got {type(section).__name__}")
            continue
        factories = reg.kind(kind)
        decoded: dict[ComponentID, Any] = getattr(config, kind)
        for id_text, body in section.items():
            path = f"{kind}.{id_text}"
            try:
                cid = ComponentID.parse(str(id_text))
            except ValueError as exc:
                errors.append(f"{path}: {exc}")
                continue
            factory = factories.get(cid.type)
            declared.add((kind, cid))
            if factory is None:
                known = ", ".join(sorted(factories)) or "none available"
                if cid.type in _UPSTREAM_TYPES[kind]:
                    errors.append(
                        f"{path}: {_SINGULAR[kind]} type {cid.type!r} is an upstream Collector component that"
                        f" otel-metrics does not provide (available: {known})"
                    )
                    continue
                errors.append(
                    f"{path}: unknown {_SINGULAR[kind]} type {cid.type!r}{did_you_mean(cid.type, factories)}"
                    f" (known: {known})"
                )
                continue
            decoded[cid] = decode_section(factory.config_type, body, path, errors)

    service = tree.get("service")
    if service is None:
        errors.append("service: missing (a config needs service.pipelines)")
    elif not isinstance(service, dict):
        errors.append(f"service: expected a mapping, got {type(service).__name__}")
    else:
        _check_service(service, config, reg, declared, errors)

    if errors:
        raise ConfigError(errors, source)
    return config


def _parse_ids(value: Any, path: str, errors: list[str]) -> list[ComponentID]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append(f"{path}: expected a list of component ids, got {type(value).__name__}")
        return []
    ids: list[ComponentID] = []
    for i, item in enumerate(value):
        try:
            cid = ComponentID.parse(str(item))
        except ValueError as exc:
            errors.append(f"{path}[{i}]: {exc}")
            continue
        if cid in ids:
            errors.append(f"{path}: {cid} is listed twice")
            continue
        ids.append(cid)
    return ids


def _undefined(cid: ComponentID, kind: str, defined: Mapping[ComponentID, Any]) -> str:
    return (
        f"references {_SINGULAR[kind]} {str(cid)!r} which is not configured under '{kind}'"
        f"{did_you_mean(str(cid), [str(d) for d in defined])}"
    )


def _check_service(
    service: dict[str, Any],
    config: Config,
    reg: Registry,
    declared: set[tuple[str, ComponentID]],
    errors: list[str],
) -> None:
    for key in service:
        if key not in _SERVICE_KEYS:
            errors.append(f"service.{key}: unknown key{did_you_mean(str(key), _SERVICE_KEYS)}")

    config.service_extensions = _parse_ids(service.get("extensions"), "service.extensions", errors)
    for cid in config.service_extensions:
        if cid not in config.extensions and ("extensions", cid) not in declared:
            errors.append(f"service.extensions: {_undefined(cid, 'extensions', config.extensions)}")

    config.telemetry = decode(TelemetryConfig, service.get("telemetry"), "service.telemetry", errors)

    pipelines = service.get("pipelines")
    if not isinstance(pipelines, dict) or not pipelines:
        errors.append("service.pipelines: at least one pipeline (traces, metrics or logs) is required")
        return
    # connector id -> signals it is used in as an exporter / as a receiver
    uses: _ConnectorUses = {"exporters": {}, "receivers": {}}
    for pid_text, body in pipelines.items():
        _check_pipeline(str(pid_text), body, config, reg, declared, uses, errors)
    _check_connectors(config, reg, uses, errors)
    _warn_unused(config)


# "exporters"/"receivers" -> connector id -> the signals of the pipelines it is used in in that role
_ConnectorUses = dict[str, dict[ComponentID, set[Signal]]]


def _check_pipeline(
    pid_text: str,
    body: Any,
    config: Config,
    reg: Registry,
    declared: set[tuple[str, ComponentID]],
    uses: _ConnectorUses,
    errors: list[str],
) -> None:
    path = f"service.pipelines.{pid_text}"
    signals = [s.value for s in Signal]
    type_, _, name = pid_text.partition("/")
    if type_ not in signals or (pid_text.endswith("/") and not name):
        errors.append(
            f"{path}: pipeline id must be 'traces', 'metrics' or 'logs', optionally '/name'"
            f"{did_you_mean(type_, signals)}"
        )
        return
    signal = Signal(type_)
    if body is None or not isinstance(body, dict):
        errors.append(f"{path}: expected a mapping with receivers, processors and exporters")
        return
    for key in body:
        if key not in _PIPELINE_KEYS:
            errors.append(f"{path}.{key}: unknown key{did_you_mean(str(key), _PIPELINE_KEYS)}")
    refs = PipelineRefs(
        receivers=_parse_ids(body.get("receivers"), f"{path}.receivers", errors),
        processors=_parse_ids(body.get("processors"), f"{path}.processors", errors),
        exporters=_parse_ids(body.get("exporters"), f"{path}.exporters", errors),
    )
    if not refs.receivers:
        errors.append(f"{path}.receivers: a pipeline needs at least one receiver")
    if not refs.exporters:
        errors.append(f"{path}.exporters: a pipeline needs at least one exporter")
    for kind, role in (("receivers", "receiver"), ("processors", "processor"), ("exporters", "exporter")):
        configured: dict[ComponentID, Any] = getattr(config, kind)
        for cid in getattr(refs, kind):
            if kind in uses and cid in config.connectors:
                uses[kind].setdefault(cid, set()).add(signal)
            elif cid in configured:
                _check_signal(getattr(reg, kind)[cid.type], role, cid, signal, f"{path}.{kind}", errors)
            elif not declared & {(kind, cid), ("connectors", cid)}:
                errors.append(f"{path}.{kind}: {_undefined(cid, kind, configured)}")
    config.pipelines[PipelineID(signal, name)] = refs


def _check_connectors(config: Config, reg: Registry, uses: _ConnectorUses, errors: list[str]) -> None:
    as_exporter, as_receiver = uses["exporters"], uses["receivers"]
    for cid in sorted(set(as_exporter) | set(as_receiver)):
        ins, outs = as_exporter.get(cid, set()), as_receiver.get(cid, set())
        if not ins or not outs:
            errors.append(
                f"connectors.{cid}: a connector must be an exporter in one pipeline and a receiver in another"
                f" (used only as {'exporter' if ins else 'receiver'})"
            )
            continue
        routes = reg.connectors[cid.type].routes
        if not any((i, o) in routes for i in ins for o in outs):
            supported = ", ".join(f"{i.value}->{o.value}" for i, o in sorted(routes)) or "none"
            used = ", ".join(f"{i.value}->{o.value}" for i in sorted(ins) for o in sorted(outs))
            errors.append(f"connectors.{cid}: used as {used}, but it supports only {supported}")
    cycle = _connector_cycle(config, reg)
    if cycle:
        errors.append(f"service.pipelines: connectors form a cycle ({cycle}); data would loop forever")


def _warn_unused(config: Config) -> None:
    # Configured but unused is legal (upstream ignores it) but usually a forgotten pipeline entry.
    referenced = {cid for refs in config.pipelines.values() for ids in vars(refs).values() for cid in ids}
    for kind in ("receivers", "processors", "exporters", "connectors"):
        for cid in getattr(config, kind):
            if cid not in referenced:
                config.warnings.append(f"{kind}.{cid}: configured but not used in any pipeline")
    for cid in config.extensions:
        if cid not in config.service_extensions:
            config.warnings.append(f"extensions.{cid}: configured but not listed in service.extensions")


def _connector_cycle(config: Config, reg: Registry) -> str:
    """A cycle of pipelines linked by connectors, as text, or an empty string (upstream rejects cycles)."""
    edges: dict[PipelineID, list[tuple[ComponentID, PipelineID]]] = {}
    for pid, refs in config.pipelines.items():
        for cid in refs.exporters:
            if cid in config.connectors:
                routes = reg.connectors[cid.type].routes
                edges.setdefault(pid, []).extend(
                    (cid, qid)
                    for qid, q in config.pipelines.items()
                    if cid in q.receivers and (pid.signal, qid.signal) in routes
                )
    state: dict[PipelineID, int] = {}  # 1 visiting, 2 done
    path: list[tuple[PipelineID, str]] = []  # (pipeline, how we got there)

    def visit(pid: PipelineID, via: str) -> str:
        state[pid] = 1
        path.append((pid, via))
        for cid, nxt in edges.get(pid, []):
            if state.get(nxt) == 1:
                start = [p for p, _ in path].index(nxt)
                hops = [f"{v}{p}" for p, v in path[start:]]
                return "".join([hops[0].removeprefix(path[start][1]), *hops[1:], f" -[{cid}]-> {nxt}"])
            if nxt not in state:
                found = visit(nxt, f" -[{cid}]-> ")
                if found:
                    return found
        state[pid] = 2
        path.pop()
        return ""

    for pid in config.pipelines:
        if pid not in state:
            found = visit(pid, "")
            if found:
                return found
    return ""


def _check_signal(factory: Any, kind: str, cid: ComponentID, signal: Signal, path: str, errors: list[str]) -> None:
    if signal not in factory.signals:
        supported = ", ".join(sorted(s.value for s in factory.signals))
        errors.append(f"{path}: {kind} {str(cid)!r} does not support {signal.value} (it supports: {supported})")
