"""Fan-out consumers: one receiver into several pipelines, one pipeline into several exporters.

Exporters of a pipeline run concurrently (``asyncio.gather``) on the *same* message, which they must treat
as read-only (ARCHITECTURE decision 1): the processors have all run before the fan-out, and an exporter that
needs to change data must copy it first. Pipelines, in contrast, each own their processors, which change
messages in place, so a receiver feeding several pipelines hands each one but the last its own copy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from processors.pipeline import Consumer, DataError, RefusedError, Request, RetryableError, Signal

__all__ = ["ExportersFanOut", "PipelinesFanOut", "combine_errors"]


def combine_errors(errors: Sequence[BaseException]) -> BaseException:
    """One error for the sender: retryable wins (the client retries; a peer that accepted sees a duplicate,
    as with the upstream Collector), then data errors, then anything else."""
    retry_afters = [e.retry_after for e in errors if isinstance(e, RefusedError | RetryableError) and e.retry_after]
    if any(isinstance(e, RefusedError | RetryableError) for e in errors):
        if len(errors) == 1 and isinstance(errors[0], RefusedError):
            return errors[0]
        message = "; ".join(str(e) for e in errors)
        return RefusedError(message, retry_after=max(retry_afters, default=1.0))
    for e in errors:
        if isinstance(e, DataError):
            return e
    return errors[0]


async def _gather(consumers: Sequence[Consumer], signal: Signal, requests: Sequence[Request]) -> None:
    results = await asyncio.gather(
        *(c.consume(signal, r) for c, r in zip(consumers, requests, strict=True)), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    for e in errors:
        if not isinstance(e, Exception):  # CancelledError, KeyboardInterrupt: never swallow
            raise e
    if errors:
        raise combine_errors(errors)


class _FanOut:
    """Every consumer gets the request (or what ``_messages`` makes of it for each), concurrently."""

    def __init__(self, consumers: Sequence[Consumer]) -> None:
        self.consumers = list(consumers)

    async def consume(self, signal: Signal, request: Request) -> None:
        if len(self.consumers) == 1:
            await self.consumers[0].consume(signal, request)
            return
        await _gather(self.consumers, signal, self._messages(request))

    def _messages(self, request: Request) -> list[Request]:
        return [request] * len(self.consumers)


class ExportersFanOut(_FanOut):
    """The end of a pipeline: every exporter gets the same, read-only message, concurrently."""


class PipelinesFanOut(_FanOut):
    """A receiver (or connector) feeding several pipelines of one signal; each gets its own message."""

    def _messages(self, request: Request) -> list[Request]:
        copies: list[Request] = []
        for _ in self.consumers[1:]:
            clone = type(request)()
            clone.CopyFrom(request)
            copies.append(clone)
        copies.append(request)
        return copies
