"""The contract every collector component builds on: OTLP request messages flow through consumers.

As pdata is for the upstream Collector, the opentelemetry-proto ``Export*ServiceRequest`` messages are the data
unit (ARCHITECTURE decision 1). A processor changes the message in place and hands it to the next consumer; an
awaited ``consume`` returns only when everything downstream has accepted the data (for a persistent queue: when it
is on disk), which is what lets a receiver acknowledge only durable data (decision 3).

This module lives in ``processors`` (the lowest room) so that both the pipeline processors here and the collector's
receivers, exporters and connectors share it; ``collector.component`` re-exports it. The facts about the signals
themselves (``Signal``, ``Request``, item counting) live in ``processors.pdata`` and are re-exported here.
"""

from __future__ import annotations

import abc
import builtins
import contextlib
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, NewType, Protocol

from opentelemetry.metrics import Meter, NoOpMeter

from processors.pdata import Request, Signal, item_count, new_request, parse_request

__all__ = [
    "ComponentID",
    "Consumer",
    "CreateSettings",
    "DataError",
    "Duration",
    "Processor",
    "ProcessorFactory",
    "RefusedError",
    "Request",
    "RetryableError",
    "Signal",
    "item_count",
    "new_request",
    "parse_request",
    "received_as",
    "serialized",
]

# A config field annotated ``Duration`` holds seconds; the config decoder accepts Go-style strings ("200ms", "5s",
# "1m30s", "1h") as the upstream Collector does, and plain numbers as seconds.
Duration = NewType("Duration", float)


# The request a receiver is handing downstream and the bytes it was parsed from, while both still agree: set by the
# receiver, cleared (``received_as(request, None)``) by a pipeline whose processors may change messages
# (``Processor.mutates_data``). Lets a
# persistent queue store those bytes instead of serializing the message again (0.5 µs a span).
_received: ContextVar[tuple[Request, bytes] | None] = ContextVar("otel_metrics_received_wire", default=None)


@contextlib.contextmanager
def received_as(request: Request, wire: bytes | None) -> Iterator[None]:
    """While in this block, ``serialized(request)`` is ``wire`` (None: not known)."""
    token = _received.set(None if wire is None else (request, wire))
    try:
        yield
    finally:
        _received.reset(token)


def serialized(request: Request) -> bytes:
    """``request.SerializeToString()``, or the bytes it was received as if nothing can have changed it since."""
    received = _received.get()
    if received is not None and received[0] is request:
        return received[1]
    data: bytes = request.SerializeToString()
    return data


@dataclass(frozen=True, order=True)
class ComponentID:
    """``type[/name]`` as written in a Collector config, parsed once."""

    type: str
    name: str = ""

    @classmethod
    def parse(cls, text: str) -> ComponentID:
        type_, sep, name = str(text).strip().partition("/")
        if not type_ or (sep and not name):
            raise ValueError(f"invalid component id {text!r}: expected 'type' or 'type/name'")
        return cls(type_, name)

    def __str__(self) -> str:
        return f"{self.type}/{self.name}" if self.name else self.type


class RefusedError(Exception):
    """Retryable refusal (memory pressure, full queue): gRPC UNAVAILABLE / HTTP 503 with Retry-After."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryableError(Exception):
    """A transient export failure (peer down, timeout): the sending queue retries with backoff."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DataError(Exception):
    """The data itself is unacceptable (malformed, invalid): never retried. HTTP 400 / INVALID_ARGUMENT."""


class Consumer(Protocol):
    async def consume(self, signal: Signal, request: Request) -> None:
        """Return when downstream has accepted ``request``; raise RefusedError/DataError otherwise."""
        ...


@dataclass
class CreateSettings:
    """What a factory gets besides its config: its id, the pipeline signal, the collector's own meter."""

    id: ComponentID
    signal: Signal
    meter: Meter = field(default_factory=lambda: NoOpMeter("otel-metrics"))
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("otel_metrics.collector"))


class Processor(abc.ABC):
    """A pipeline processor: change the message in place (or drop items), then pass it on.

    ``start``/``shutdown`` have no-op defaults. A processor that keeps state across calls (batch) must flush it
    in ``shutdown``. ``mutates_data`` (the Collector's consumer capability of that name): False for a processor
    that never changes the message it passes on.
    """

    mutates_data: bool = True

    def __init__(self, settings: CreateSettings, next_consumer: Consumer) -> None:
        self.settings = settings
        self.next_consumer = next_consumer

    async def start(self, host: Any) -> None:  # noqa: B027 - documented no-op default
        pass

    async def shutdown(self) -> None:  # noqa: B027 - documented no-op default
        pass

    @abc.abstractmethod
    async def consume(self, signal: Signal, request: Request) -> None: ...


@dataclass(frozen=True)
class ProcessorFactory:
    """How the collector finds a processor by its type name.

    ``config_type`` is a dataclass whose fields (with defaults) are the component's config keys; the collector
    decodes YAML into it strictly (unknown keys and wrong types are errors naming the path). If the dataclass has
    ``validate(self) -> list[str]``, each returned message names the offending field.
    """

    type: str
    config_type: builtins.type[Any]
    create: Callable[[CreateSettings, Any, Consumer], Processor]
    signals: frozenset[Signal] = frozenset(Signal)
