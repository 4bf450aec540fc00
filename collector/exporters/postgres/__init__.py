"""The ``postgres`` exporter: OTLP traces, metrics and logs into partitioned tables with rollups."""

from __future__ import annotations

from typing import Any

factories: tuple[Any, ...] = ()
