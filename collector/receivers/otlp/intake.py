"""What both transports do with a parsed request: check ids, hand it downstream, count, build the response.

The response is sent only after ``await consumer.consume(...)`` returned, so with persistent queues
downstream an acknowledgement means the data is on disk (ARCHITECTURE decision 3).

Partial success (OTLP spec): spans and log records whose ids have the wrong length are removed and reported
as rejected in ``partial_success``; a downstream ``DataError`` carrying an int ``rejected_items`` attribute
smaller than the request's item count is reported the same way (the rest was accepted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from collector.confighttp import run_on
from processors.pdata import Response, count_items, drop_bad_ids, item_count, new_response
from processors.pipeline import (
    Consumer,
    CreateSettings,
    DataError,
    Request,
    Signal,
    item_counters,
    received_as,
    sized_call,
)

__all__ = ["Authenticate", "Intake", "TransportIntake"]

# Checks a request's headers (lower-case names); raises to refuse it.
Authenticate = Callable[[dict[str, str]], Awaitable[None]]


class Intake:
    """One per receiver; ``transport`` ("grpc"/"http") is a metric attribute, as in the Collector's."""

    def __init__(self, settings: CreateSettings, consumers: Mapping[Signal, Consumer]) -> None:
        self.settings = settings
        self.consumers = dict(consumers)
        self._accepted = item_counters(
            settings.meter,
            "otelcol_receiver_accepted_{items}",
            "Number of {items} successfully pushed into the pipeline.",
        )
        self._refused = item_counters(
            settings.meter,
            "otelcol_receiver_refused_{items}",
            "Number of {items} that could not be pushed into the pipeline.",
        )
        self._refused_unread = settings.meter.create_counter(
            "otelcol_receiver_refused_requests",
            unit="{request}",
            description="Number of requests refused before their body was read, whose items are not known.",
        )

    def refused_before_decoding(self, signal: Signal, transport: str, wire: bytes | None) -> None:
        """Count a request refused before it was decoded (memory_limiter admission, the gRPC call bound): its
        items when its protobuf ``wire`` bytes are at hand (counted from their field tags, not decoded), else the
        request in ``otelcol_receiver_refused_requests``."""
        attrs = {"receiver": str(self.settings.id), "transport": transport}
        items = count_items(signal.value, wire) if wire is not None else None
        if items is None:
            self._refused_unread.add(1, attrs)
        elif items:
            self._refused[signal].add(items, attrs)

    def serves(self, signal: Signal) -> bool:
        return signal in self.consumers

    async def export(self, signal: Signal, request: Request, transport: str, wire: bytes | None = None) -> Response:
        """Consume ``request``; return the OTLP response, or raise DataError/RefusedError/other for the caller
        to map onto its transport's codes. ``wire``: the protobuf bytes ``request`` was parsed from, if any."""
        attrs = {"receiver": str(self.settings.id), "transport": transport}
        total = item_count(signal, request)
        if total == 0:
            return new_response(signal)
        # ~1.3 µs an item: a large request's check would hold the service's loop.
        rejected, reason = await sized_call(total, drop_bad_ids, signal, request)
        if rejected:
            self._refused[signal].add(rejected, attrs)
            if rejected == total:
                raise DataError(f"all {total} items rejected: {reason}")
        try:
            with received_as(request, None if rejected else wire):
                await self.consumers[signal].consume(signal, request)
        except DataError as exc:
            partial = getattr(exc, "rejected_items", None)
            valid = total - rejected
            if isinstance(partial, int) and 0 < partial < valid:
                self._refused[signal].add(partial, attrs)
                self._accepted[signal].add(valid - partial, attrs)
                message = "; ".join(m for m in (reason, str(exc)) if m)
                return new_response(signal, rejected + partial, message)
            self._refused[signal].add(valid, attrs)
            raise
        except BaseException:
            self._refused[signal].add(total - rejected, attrs)
            raise
        self._accepted[signal].add(total - rejected, attrs)
        return new_response(signal, rejected, reason) if rejected else new_response(signal)


@dataclass(frozen=True)
class TransportIntake:
    """One transport's way into a receiver's intake, called on that transport's loop: its name (the ``transport``
    metric attribute), its authenticator, and the service's loop, where the pipeline runs."""

    intake: Intake
    transport: str
    authenticate: Authenticate | None
    pipeline_loop: asyncio.AbstractEventLoop

    @property
    def settings(self) -> CreateSettings:
        return self.intake.settings

    def serves(self, signal: Signal) -> bool:
        return self.intake.serves(signal)

    def refused_before_decoding(self, signal: Signal, wire: bytes | None) -> None:
        self.intake.refused_before_decoding(signal, self.transport, wire)

    async def export(self, signal: Signal, request: Request, wire: bytes | None) -> Response:
        """``Intake.export`` on the service's loop; for a transport on a loop of its own (the HTTP listeners), only
        this step of a request leaves it."""
        export = self.intake.export(signal, request, self.transport, wire)
        if asyncio.get_running_loop() is self.pipeline_loop:
            return await export
        return await run_on(self.pipeline_loop, export)
