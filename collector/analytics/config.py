"""Config of the ``analytics`` extension (``extensions: analytics:`` in otel-collector.yaml): every key, its
default (a named constant) and ``validate()`` naming the key. Also the rule set the CLI's ``alerts evaluate``
and the API use when no config file defines one."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from collector.confmap.bounds import above, at_least
from collector.confmap.sections import component_config
from processors.pipeline import Duration

__all__ = [
    "ALERT_METRICS",
    "DEFAULT_ALERT_INTERVAL",
    "DEFAULT_ENDPOINT",
    "DEFAULT_RULES",
    "TYPE",
    "AlertRuleConfig",
    "AlertsConfig",
    "AnalyticsConfig",
    "ThresholdsConfig",
    "WebhookConfig",
    "config_from_file",
    "default_rules",
    "is_loopback",
]

# The extension's type name in a collector config.
TYPE = "analytics"
DEFAULT_ENDPOINT = "127.0.0.1:8890"
DEFAULT_DATA_DIR = "./.otel-metrics/postgres"  # the postgres exporter's default: the same embedded server
DEFAULT_ALERT_INTERVAL = Duration(60.0)
DEFAULT_RULE_WINDOW = Duration(300.0)
DEFAULT_BASELINE = Duration(86400.0)
DEFAULT_Z_THRESHOLD = 3.0
DEFAULT_MIN_CALLS = 1
DEFAULT_WEBHOOK_TIMEOUT = Duration(5.0)
DEFAULT_SLOW = Duration(5.0)
DEFAULT_VERY_SLOW = Duration(30.0)
DEFAULT_MAX_LIMIT = 1000
# metric -> what the threshold means
ALERT_METRICS = {
    "avg_ms": "average duration in ms above threshold",
    "p95_ms": "p95 duration in ms above threshold",
    "error_rate": "share of failed spans (0..1) above threshold",
    "budget_utilization": "budget spend / amount at or above the budget's own warning/critical ratios",
    "anomaly_avg_ms": "average duration at least z_threshold standard deviations above the hourly baseline",
}
SEVERITIES = ("warning", "critical")


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``); an empty host or a wildcard is not."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class AlertRuleConfig:
    name: str = ""  # unique among the rules; names the alerts it opens
    # avg_ms, p95_ms, error_rate, budget_utilization or anomaly_avg_ms (docs/analytics.md).
    metric: str = "avg_ms"
    # Not used by budget_utilization (each budget has its own ratios) nor anomaly_avg_ms (z_threshold).
    threshold: float | None = None
    severity: str = "warning"  # warning or critical
    # The recent span of time the metric is computed over.
    window: Duration = field(default=DEFAULT_RULE_WINDOW, metadata=above(0))
    group_by: str = "service"  # service | operation
    service: str | None = None  # only this service; omitted: every service
    operation: str | None = None  # only this operation; omitted: every operation
    # Groups with fewer spans in the window are not judged.
    min_calls: int = field(default=DEFAULT_MIN_CALLS, metadata=at_least(1))
    baseline: Duration = DEFAULT_BASELINE  # anomaly_avg_ms: the history the hourly baseline is taken from
    z_threshold: float = DEFAULT_Z_THRESHOLD  # anomaly_avg_ms: standard deviations above the baseline

    def validate(self) -> list[str]:
        errors = []
        if not self.name:
            errors.append("name: must not be empty")
        if self.metric not in ALERT_METRICS:
            errors.append(f"metric: expected one of {', '.join(ALERT_METRICS)}, got {self.metric!r}")
        if self.metric in ("avg_ms", "p95_ms", "error_rate") and self.threshold is None:
            errors.append(f"threshold: required for metric {self.metric!r}")
        if self.severity not in SEVERITIES:
            errors.append(f"severity: expected warning or critical, got {self.severity!r}")
        if self.group_by not in ("service", "operation"):
            errors.append(f"group_by: expected service or operation, got {self.group_by!r}")
        if self.metric == "anomaly_avg_ms" and self.baseline <= self.window:
            errors.append("baseline: must be longer than window")
        return errors


def default_rules() -> list[AlertRuleConfig]:
    """avg > 500 ms warning, p95 > 2 s critical, error rate > 5 % critical, budgets, duration anomalies."""
    return [
        AlertRuleConfig(name="high_avg_latency", metric="avg_ms", threshold=500.0, severity="warning"),
        AlertRuleConfig(name="high_p95_latency", metric="p95_ms", threshold=2000.0, severity="critical"),
        AlertRuleConfig(name="high_error_rate", metric="error_rate", threshold=0.05, severity="critical"),
        AlertRuleConfig(name="budget", metric="budget_utilization", severity="warning"),
        AlertRuleConfig(name="latency_anomaly", metric="anomaly_avg_ms", severity="warning", group_by="operation"),
    ]


DEFAULT_RULES = tuple(default_rules())


@dataclass
class WebhookConfig:
    url: str = ""  # empty: no webhook
    timeout: Duration = DEFAULT_WEBHOOK_TIMEOUT  # per delivery attempt
    headers: dict[str, str] = field(default_factory=dict)  # sent with each delivery (e.g. an authorization token)

    def validate(self) -> list[str]:
        if self.url and not self.url.startswith(("http://", "https://")):
            # Not echoed: webhook URLs often carry their secret in the path.
            return ["webhook::url: expected an http:// or https:// URL"]
        return []


@dataclass
class AlertsConfig:
    enabled: bool = True  # evaluate the rules periodically while the collector runs
    interval: Duration = field(default=DEFAULT_ALERT_INTERVAL, metadata=above(0))  # how often the rules are evaluated
    rules: list[AlertRuleConfig] = field(default_factory=default_rules)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)

    def validate(self) -> list[str]:
        errors = []
        names: set[str] = set()
        for i, rule in enumerate(self.rules):
            errors += [f"alerts::rules::{i}::{e}" for e in rule.validate()]
            if rule.name in names:
                errors.append(f"alerts::rules::{i}::name: {rule.name!r} appears twice")
            names.add(rule.name)
        errors += [f"alerts::{e}" for e in self.webhook.validate()]
        return errors


@dataclass
class ThresholdsConfig:
    slow: Duration = DEFAULT_SLOW  # spans at least this long count as slow in reports
    very_slow: Duration = DEFAULT_VERY_SLOW  # and at least this long as very slow

    def validate(self) -> list[str]:
        if not 0 < self.slow <= self.very_slow:
            return [f"thresholds: expected 0 < slow <= very_slow, got {self.slow} and {self.very_slow}"]
        return []


@dataclass
class AnalyticsConfig:
    # HTTP API listen address (the analytics port from docs/conventions.md).
    endpoint: str = DEFAULT_ENDPOINT
    # Bearer token required on every /api/v1 route except health; empty: no auth (allowed only when endpoint is a
    # loopback address: the API refuses to start on any other address without a token).
    token: str = ""
    # Host names (or addresses) requests may name in their Host header besides the loopback names and the
    # endpoint's own address, so a page on another site cannot reach the API by DNS rebinding; "*": any host.
    allowed_hosts: list[str] = field(default_factory=list)
    # The sink's database: a postgresql:// URL, or None/"embedded" for the embedded server under data_dir
    # (the postgres exporter's defaults, so both find the same server).
    dsn: str | None = None
    data_dir: str = DEFAULT_DATA_DIR
    # Largest page (`limit`) the HTTP API returns; larger requests are capped.
    max_limit: int = field(default=DEFAULT_MAX_LIMIT, metadata=at_least(1))
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    thresholds: ThresholdsConfig = field(default_factory=ThresholdsConfig)

    def validate(self) -> list[str]:
        errors = [*self.alerts.validate(), *self.thresholds.validate()]
        host, sep, port = self.endpoint.rpartition(":")
        if not sep or not port.isdigit():
            errors.append(f"endpoint: expected host:port, got {self.endpoint!r}")
        elif not self.token and not is_loopback(host):
            errors.append(
                f"token: required when endpoint {self.endpoint!r} is not a loopback address (anyone who can reach it"
                " could read every span and change budgets and alerts)"
            )
        if self.dsn and self.dsn != "embedded" and not self.dsn.startswith(("postgresql://", "postgres://")):
            errors.append(f"dsn: expected a postgresql:// URL or 'embedded', got {self.dsn!r}")
        return errors


def config_from_file(path: str | os.PathLike[str]) -> AnalyticsConfig | None:
    """The ``analytics`` extension's config in a collector config file; None if it has none."""
    return component_config(path, "extensions", TYPE, AnalyticsConfig)
