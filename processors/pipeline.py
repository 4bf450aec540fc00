"""The contract every collector component builds on: OTLP request messages flow through consumers.

As pdata is for the upstream Collector, the opentelemetry-proto ``Export*ServiceRequest`` messages are the data
unit (ARCHITECTURE decision 1). A processor changes the message in place and hands it to the next consumer; an
awaited ``consume`` returns only when everything downstream has accepted the data (for a persistent queue: when it
is on disk), which is what lets a receiver acknowledge only durable data (decision 3).

It also holds the component contract: every kind (receiver, processor, exporter, connector, extension) is a
``Component`` with one lifecycle, made by a factory generic over its config dataclass, and what the service needs
to know about a component (``Processor.mutates_data``, ``Exporter.queue_size``, ``Authenticator``) is an
attribute of its kind. It lives in ``processors`` (the lowest room) so that the pipeline processors there and the
collector's receivers, exporters and connectors share it; ``collector.component`` re-exports it. The facts about
the signals themselves (``Signal``, ``Request``, item counting) live in ``processors.pdata`` and are re-exported
here.
"""

from __future__ import annotations

import abc
import asyncio
import builtins
import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Generic, NewType, Protocol, TypeVar

from opentelemetry.metrics import Counter, Meter, NoOpMeter

from processors.pdata import Request, Signal, item_count, new_request, parse_request

__all__ = [
    "INLINE_ITEMS",
    "Authenticator",
    "Component",
    "ComponentID",
    "ConfigT",
    "Connector",
    "ConnectorFactory",
    "Consumer",
    "CreateSettings",
    "DataError",
    "Duration",
    "Exporter",
    "ExporterFactory",
    "Extension",
    "ExtensionFactory",
    "Host",
    "Processor",
    "ProcessorFactory",
    "ProcessorRun",
    "Receiver",
    "ReceiverFactory",
    "RefusedError",
    "Request",
    "RetryableError",
    "Signal",
    "SyncProcessor",
    "changing",
    "item_count",
    "item_counters",
    "new_request",
    "parse_request",
    "received_as",
    "serialized",
    "sized_call",
    "with_alias",
]

# A config field annotated ``Duration`` holds seconds; the config decoder accepts Go-style strings ("200ms", "5s",
# "1m30s", "1h") as the upstream Collector does, and plain numbers as seconds.
Duration = NewType("Duration", float)


# The request a receiver is handing downstream and the bytes it was parsed from, while both still agree: set by the
# receiver, cleared (``received_as(request, None)``) by a pipeline whose processors may change messages
# (``Processor.mutates_data``) unless each of them reports its changes (``Processor.reports_changes``, then cleared
# by ``changing``). Lets a persistent queue store those bytes, and the processors' pre-checks search them, instead
# of serializing the message again (0.4-0.5 µs a span each time).
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


def changing(request: Request) -> None:
    """Said by a processor that reports its changes before it changes ``request`` in any way: from then on
    ``serialized(request)`` is a fresh serialization."""
    received = _received.get()
    if received is not None and received[0] is request:
        _received.set(None)


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


def item_counters(meter: Meter, name: str, description: str) -> dict[Signal, Counter]:
    """One counter of items per signal, as the Collector's own metrics count them: ``{items}`` in ``name`` and
    ``description`` is the signal's item name (spans, metric_points, log_records), which is also the unit."""
    return {
        s: meter.create_counter(
            name.format(items=s.item_name), unit=f"{{{s.item_name}}}", description=description.format(items=s.item_name)
        )
        for s in Signal
    }


@dataclass
class CreateSettings:
    """What a factory gets besides its config: its id, the pipeline signal, the collector's own meter."""

    id: ComponentID
    signal: Signal
    meter: Meter = field(default_factory=lambda: NoOpMeter("otel-metrics"))
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("otel_metrics.collector"))


# -- the component contract: one lifecycle for every kind, one generic factory per kind ------------------------

ConfigT = TypeVar("ConfigT")


class Host(Protocol):
    """What a running component may ask of the collector."""

    def get_extension(self, id: ComponentID) -> Extension:
        """The started extension with this id; KeyError if it is not configured."""
        ...

    def component_status(self) -> Mapping[str, Mapping[str, Any]]:
        """Per-component health (``{"exporter/otlp": {"healthy": True, ...}}``) for health_check."""
        ...

    @property
    def up_since(self) -> float | None:
        """When the collector finished starting (epoch seconds); None before that."""
        ...


class Component(abc.ABC):  # noqa: B024 - every hook has a documented default
    """Lifecycle with no-op defaults, as in the SDK's SpanProcessor. Every kind below is a Component."""

    async def start(self, host: Host) -> None:  # noqa: B027 - documented no-op default
        pass

    async def shutdown(self) -> None:  # noqa: B027 - documented no-op default
        pass

    def healthy(self) -> bool:
        """False while the component cannot do its job (e.g. an exporter whose peer is unreachable)."""
        return True


class Receiver(Component):
    """Receives data and calls the consumer of the pipeline(s) it belongs to.

    A receiver listed in several pipelines of one signal is one instance (one port) fanning out to all of them.
    """


class Processor(Component):
    """A pipeline processor: change the message in place (or drop items), then pass it on.

    A processor that keeps state across calls (batch) must flush it in ``shutdown``. ``mutates_data`` (the
    Collector's consumer capability of that name): False for a processor that never changes the message it passes
    on, which lets a pipeline of such processors hand the received bytes on unchanged. ``reports_changes``: True
    for a processor that calls ``changing(request)`` before it changes a message, so that a message it leaves alone
    keeps its received bytes.
    """

    mutates_data: bool = True
    reports_changes: bool = False

    def __init__(self, settings: CreateSettings, next_consumer: Consumer) -> None:
        self.settings = settings
        self.next_consumer = next_consumer

    @abc.abstractmethod
    async def consume(self, signal: Signal, request: Request) -> None: ...


class SyncProcessor(Processor):
    """A processor that is its ``process`` function, as upstream's processorhelper makes one from a
    ``ProcessTracesFunc``: it changes the message in place (or refuses it by raising) and keeps no request between
    calls. The pipeline runs consecutive ones as one step (``ProcessorRun``), on a worker thread for a large request,
    so ``process`` may run on any thread, concurrently with itself: what it keeps across calls must stay consistent
    under that (caches filled idempotently, counters from the SDK)."""

    @abc.abstractmethod
    def process(self, signal: Signal, request: Request) -> bool:
        """Change ``request`` in place; False when nothing is left to pass on (upstream's ErrSkipProcessingData)."""

    async def consume(self, signal: Signal, request: Request) -> None:
        if self.process(signal, request):
            await self.next_consumer.consume(signal, request)


# Work over a request with more items than this (a run of processors, the receiver's bad-id check) is done on a
# worker thread (sized_call), so that the event loop (every receiver's calls, health_check, /metrics) keeps
# answering: inline, the default traces processors held the loop for seconds on a 100,000-span request. Below it,
# the hand-over costs more than the work: an SDK batch of 512 spans takes the default processors ~2 ms.
INLINE_ITEMS = 2048
# That work shares two threads of its own, not the loop's default executor, which the persistent queue's reads
# use: a burst of large requests does not hold up the queue. Two, since the work holds the GIL: more threads would
# only take turns.
_WORKERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="otel-metrics-processors")
_T = TypeVar("_T")


async def sized_call(items: int, fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)``, work over ``items`` items: inline up to INLINE_ITEMS, else on the pipeline's worker threads in a
    copy of this context, the loop free meanwhile."""
    if items <= INLINE_ITEMS:
        return fn(*args)
    run = contextvars.copy_context().run
    return await asyncio.get_running_loop().run_in_executor(_WORKERS, run, fn, *args)


class ProcessorRun:
    """Consecutive synchronous processors of one pipeline, run as one step before the next consumer."""

    def __init__(self, processors: Sequence[SyncProcessor], next_consumer: Consumer) -> None:
        self.processors = tuple(processors)
        self.next_consumer = next_consumer

    async def consume(self, signal: Signal, request: Request) -> None:
        # On a worker the run sees a copy of this context: a processor's changing(request) there is repeated here,
        # or the exporters would be handed the bytes the request was received as.
        count = item_count(signal, request)
        keep, changed = await sized_call(count, self._process_reporting_changes, signal, request)
        if changed:
            changing(request)
        if keep:
            await self.next_consumer.consume(signal, request)

    def _process_reporting_changes(self, signal: Signal, request: Request) -> tuple[bool, bool]:
        keep = all(p.process(signal, request) for p in self.processors)
        received = _received.get()
        return keep, received is None or received[0] is not request


class Exporter(Component):
    """The end of a pipeline. ``consume`` returns once the data is accepted: sent, or durably queued."""

    @abc.abstractmethod
    async def consume(self, signal: Signal, request: Request) -> None: ...

    @property
    def queue_size(self) -> int | None:
        """Items in the sending queue (health_check and the analytics /health show it); None: no queue."""
        return None

    @property
    def queue_capacity(self) -> int | None:
        """The sending queue's capacity; None: no queue."""
        return None


class Connector(Component):
    """An exporter in one pipeline that is a receiver in another (e.g. spanmetrics: traces in, metrics out)."""

    @abc.abstractmethod
    async def consume(self, signal: Signal, request: Request) -> None: ...


class Extension(Component):
    """Not in any pipeline: health_check, file_storage, bearertokenauth."""


class Authenticator(Extension):
    """An extension a receiver names in ``auth.authenticator`` (server side, as upstream's extension/auth)."""

    @abc.abstractmethod
    def authenticate(self, headers: Mapping[str, str]) -> None:
        """Return if ``headers`` (lower-case names) carry valid credentials; raise otherwise."""


# Factories: how the collector finds a component by its type name. ``config_type`` is a dataclass whose fields
# (with defaults) are the component's config keys; the collector decodes YAML into it strictly (unknown keys and
# wrong types are errors naming the path), so ``create`` gets an instance of it. If the dataclass has
# ``validate(self) -> list[str]``, each returned message names the offending field.


@dataclass(frozen=True)
class _Factory(Generic[ConfigT]):
    """What every kind of factory holds: the component type's name and its config dataclass."""

    type: str
    config_type: builtins.type[ConfigT]


@dataclass(frozen=True)
class ReceiverFactory(_Factory[ConfigT]):
    # (settings, config, consumers by signal) -> Receiver; settings.signal is the first signal it serves.
    create: Callable[[CreateSettings, ConfigT, Mapping[Signal, Consumer]], Receiver]
    signals: frozenset[Signal] = frozenset(Signal)


@dataclass(frozen=True)
class ProcessorFactory(_Factory[ConfigT]):
    # (settings, config, the next consumer in the pipeline) -> Processor
    create: Callable[[CreateSettings, ConfigT, Consumer], Processor]
    signals: frozenset[Signal] = frozenset(Signal)


@dataclass(frozen=True)
class ExporterFactory(_Factory[ConfigT]):
    create: Callable[[CreateSettings, ConfigT], Exporter]
    signals: frozenset[Signal] = frozenset(Signal)


@dataclass(frozen=True)
class ConnectorFactory(_Factory[ConfigT]):
    # (settings, config, consumer of the pipelines it feeds) -> Connector
    create: Callable[[CreateSettings, ConfigT, Consumer], Connector]
    # (signal it consumes, signal it emits)
    routes: frozenset[tuple[Signal, Signal]] = frozenset()


@dataclass(frozen=True)
class ExtensionFactory(_Factory[ConfigT]):
    create: Callable[[CreateSettings, ConfigT], Extension]


_FactoryT = TypeVar("_FactoryT", bound=_Factory[Any])


def with_alias(factory: _FactoryT, alias: str) -> tuple[_FactoryT, _FactoryT]:
    """``factory`` under its type name and under ``alias``: the older name configs still use for it (upstream
    keeps such deprecated type aliases when it renames a component)."""
    return factory, replace(factory, type=alias)
