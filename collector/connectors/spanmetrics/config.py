"""Config of the ``spanmetrics`` connector; keys and defaults as upstream contrib's spanmetricsconnector."""

from __future__ import annotations

from dataclasses import dataclass, field

from collector.confmap.bounds import above, at_least
from processors.pipeline import Duration

DEFAULT_NAMESPACE = "traces.span.metrics"
DEFAULT_METRICS_FLUSH_INTERVAL = Duration(60.0)
# Upstream's defaults are 0 (never expire) and 0 (no limit): every distinct span name would then be kept forever.
# Ours bound the series a client can create: 2,000 per metric and resource (the OTel metrics SDK's default
# cardinality limit) and five minutes without a span (the prometheus exporter's default metric_expiration).
DEFAULT_METRICS_EXPIRATION = Duration(300.0)
DEFAULT_HISTOGRAM_UNIT = "ms"
# Upstream's default explicit buckets: 2ms 4ms 6ms 8ms 10ms 50ms 100ms 200ms 400ms 800ms 1s 1400ms 2s 5s 10s
# 15s.
DEFAULT_EXPLICIT_BUCKETS: tuple[float, ...] = (
    0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
)  # fmt: skip
DEFAULT_EXPONENTIAL_MAX_SIZE = 160
DEFAULT_DIMENSIONS_CACHE_SIZE = 1000
DEFAULT_RESOURCE_METRICS_CACHE_SIZE = 1000
DEFAULT_AGGREGATION_CARDINALITY_LIMIT = 2000
DEFAULT_MAX_EXEMPLARS_PER_DATA_POINT = 5
CUMULATIVE = "AGGREGATION_TEMPORALITY_CUMULATIVE"
DELTA = "AGGREGATION_TEMPORALITY_DELTA"
DEFAULT_AGGREGATION_TEMPORALITY = CUMULATIVE


@dataclass
class Dimension:
    name: str = ""  # span or resource attribute added as a metric attribute
    default: str | None = None  # value when the span lacks it; omitted: the dimension is left out for that span


@dataclass
class ExplicitHistogramConfig:
    buckets: list[Duration] = field(default_factory=lambda: [Duration(b) for b in DEFAULT_EXPLICIT_BUCKETS])


@dataclass
class ExponentialHistogramConfig:
    max_size: int = field(default=DEFAULT_EXPONENTIAL_MAX_SIZE, metadata=at_least(2))


@dataclass
class HistogramConfig:
    disable: bool = False
    unit: str = DEFAULT_HISTOGRAM_UNIT
    explicit: ExplicitHistogramConfig | None = None
    exponential: ExponentialHistogramConfig | None = None
    dimensions: list[Dimension] = field(default_factory=list)


@dataclass
class ExemplarsConfig:
    enabled: bool = False
    max_per_data_point: int = field(default=DEFAULT_MAX_EXEMPLARS_PER_DATA_POINT, metadata=at_least(0))


@dataclass
class EventsConfig:
    enabled: bool = False
    dimensions: list[Dimension] = field(default_factory=list)


@dataclass
class SpanMetricsConfig:
    histogram: HistogramConfig = field(default_factory=HistogramConfig)
    dimensions: list[Dimension] = field(default_factory=list)
    calls_dimensions: list[Dimension] = field(default_factory=list)
    exclude_dimensions: list[str] = field(default_factory=list)
    dimensions_cache_size: int = field(default=DEFAULT_DIMENSIONS_CACHE_SIZE, metadata=above(0))
    aggregation_cardinality_limit: int = field(default=DEFAULT_AGGREGATION_CARDINALITY_LIMIT, metadata=at_least(0))
    resource_metrics_key_attributes: list[str] = field(default_factory=list)
    resource_metrics_cache_size: int = field(default=DEFAULT_RESOURCE_METRICS_CACHE_SIZE, metadata=above(0))
    aggregation_temporality: str = DEFAULT_AGGREGATION_TEMPORALITY
    metrics_flush_interval: Duration = field(default=DEFAULT_METRICS_FLUSH_INTERVAL, metadata=above(0))
    metrics_expiration: Duration = field(default=DEFAULT_METRICS_EXPIRATION, metadata=at_least(0))
    namespace: str = DEFAULT_NAMESPACE
    exemplars: ExemplarsConfig = field(default_factory=ExemplarsConfig)
    events: EventsConfig = field(default_factory=EventsConfig)

    def validate(self) -> list[str]:
        errors = []
        h = self.histogram
        if h.unit not in ("ms", "s"):
            errors.append(f"histogram.unit: {h.unit!r} is not one of ms, s")
        if h.explicit is not None and h.exponential is not None:
            errors.append("histogram: use either explicit or exponential, not both")
        if h.explicit is not None:
            b = list(h.explicit.buckets)
            if b != sorted(set(b)):
                errors.append("histogram.explicit.buckets: must be strictly increasing")
        if self.aggregation_temporality not in (CUMULATIVE, DELTA):
            errors.append(
                f"aggregation_temporality: {self.aggregation_temporality!r} is not one of {CUMULATIVE}, {DELTA}"
            )
        for path, dims in (
            ("dimensions", self.dimensions),
            ("calls_dimensions", self.calls_dimensions),
            ("histogram.dimensions", h.dimensions),
            ("events.dimensions", self.events.dimensions),
        ):
            seen: set[str] = set()
            for i, d in enumerate(dims):
                if not d.name:
                    errors.append(f"{path}[{i}].name: must not be empty")
                elif d.name in seen:
                    errors.append(f"{path}[{i}].name: duplicate dimension {d.name!r}")
                seen.add(d.name)
        return errors
