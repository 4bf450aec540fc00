"""Analytics over the PostgreSQL sink: one query layer with typed results (``queries``, ``models``), statistics,
budgets, alerts, recommendations and insights; rendered by the ``otel-metrics`` CLI and served by the HTTP API
(``api``, also as the collector's ``analytics`` extension). Reference: docs/analytics.md."""

from __future__ import annotations

from .queries import Analytics, Thresholds
from .window import Filters, TimeWindow

__all__ = ["Analytics", "Filters", "Thresholds", "TimeWindow"]
