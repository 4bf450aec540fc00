"""The ``memory_limiter`` processor: refuse data while the process uses too much memory.

Config as upstream's ``memorylimiterprocessor``: ``check_interval``, ``limit_mib`` and ``spike_limit_mib``
(default 20% of the limit), or ``limit_percentage``/``spike_limit_percentage`` of the total memory available
(the cgroup limit when there is one, else physical memory). The soft limit is ``limit - spike``.

* Above the soft limit, ``consume`` raises :class:`RefusedError` before doing any work: the receiver answers
  HTTP 503 with Retry-After / gRPC UNAVAILABLE, which OTLP clients retry with backoff (ARCHITECTURE decision
  4).
* Above the hard limit it also forces a garbage collection (and asks glibc to return freed heap pages to the
  OS), at most every ``min_gc_interval_when_hard_limited``; above the soft limit at most every
  ``min_gc_interval_when_soft_limited``. Between those, above the soft limit, it still returns freed heap pages
  (``malloc_trim``, no Python work) once per Retry-After: otherwise RSS stays up after a backlog has drained
  and the limiter keeps refusing for up to the soft GC interval, longer than OTLP clients retry (the Python
  exporter gives up after 6 attempts, ~5 s at Retry-After 1 s). tests/collector/test_overload.py shows it.

Looking before decoding: a receiver calls :func:`admit` with a request's size on the wire (the gRPC message, an
HTTP Content-Length) before it parses anything. Each running limiter reserves what the request will take once
decoded and passed along (``MEMORY_PER_WIRE_BYTE`` times its size) until it has gone through the pipeline, and
refuses when the measured usage reaches the soft limit, or with every reservation in flight would reach the soft limit
plus half the spike allowance (the other half is for what no reservation covers: messages read before they are
admitted, exporters' work, memory the allocator keeps). RSS is read fresh
for each admission (one small read), so any number of concurrent clients is bounded by what is in flight, not by
how many requests slip in between two periodic checks. One request is always admitted when nothing else is in
flight, so a request larger than the headroom is slow, never starved.

Recovering: when the process is over the soft limit with nothing in flight, it collects garbage and trims the heap
at every check (an idle collector can afford it) and takes what remains as its floor: memory it cannot give back
(allocator fragmentation, caches) is no pressure that refusing data would relieve. The soft limit in force is then
raised to ``floor + spike / 2`` (at most the hard limit), so a collector whose baseline has crept up after a burst
accepts again within a check or two instead of refusing until restarted; each idle collection sets the floor
anew, so it falls back when the memory comes back.

Memory is the process's resident set size from ``/proc/self/statm`` (one small read): it is what the OOM
killer and cgroup limits see. CPython's allocator keeps freed small objects in its arenas, so RSS falls more
slowly than live data; that errs on the side of refusing. Usage is measured by a periodic task started in
``start`` and, if that reading is older than ``check_interval`` (e.g. the loop is saturated), again inline.
``check_interval`` defaults to 1s here (upstream has no default and requires it to be set).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from processors.pipeline import (
    Consumer,
    CreateSettings,
    Duration,
    ProcessorFactory,
    RefusedError,
    Request,
    Signal,
    SyncProcessor,
    item_count,
    item_counters,
)

__all__ = [
    "MEMORY_PER_RECEIVED_BYTE",
    "MEMORY_PER_WIRE_BYTE",
    "Admission",
    "MemoryLimiterConfig",
    "MemoryLimiterProcessor",
    "admit",
    "concurrent_calls",
    "factories",
    "limit_malloc_arenas",
    "process_rss_bytes",
    "total_memory_bytes",
]

TYPE = "memory_limiter"
DEFAULT_CHECK_INTERVAL = Duration(1.0)
DEFAULT_SPIKE_FRACTION = 0.2
DEFAULT_MIN_GC_INTERVAL_WHEN_SOFT_LIMITED = Duration(10.0)
DEFAULT_MIN_GC_INTERVAL_WHEN_HARD_LIMITED = Duration(0.0)
MIB = 1 << 20

# Memory a request takes per byte on the wire once decoded and passed along: a decoded OTLP message measured 3.5x
# its protobuf size (upb, spans with string attributes); the batch processor's merge and the sending queue's bytes
# add about as much again.
MEMORY_PER_WIRE_BYTE = 6
# Memory a gRPC message takes once received and before its handler can call admit(): grpc core's buffer and the
# Python bytes handed to the handler.
MEMORY_PER_RECEIVED_BYTE = 2

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class MemoryLimiterConfig:
    # How often the process's resident memory is measured.
    check_interval: Duration = DEFAULT_CHECK_INTERVAL
    # Hard limit in MiB of resident memory; data is refused above the soft limit, limit_mib - spike_limit_mib.
    limit_mib: int = 0
    # Headroom below the hard limit for memory growth between checks (default 20 % of limit_mib).
    spike_limit_mib: int = 0
    # Hard limit as a percentage of the memory available (the cgroup limit, else physical memory), instead of
    # limit_mib.
    limit_percentage: int = 0
    # Headroom as a percentage of the memory available, with limit_percentage.
    spike_limit_percentage: int = 0
    # Above the soft limit, force a garbage collection at most this often.
    min_gc_interval_when_soft_limited: Duration = DEFAULT_MIN_GC_INTERVAL_WHEN_SOFT_LIMITED
    # Above the hard limit, force a garbage collection at most this often.
    min_gc_interval_when_hard_limited: Duration = DEFAULT_MIN_GC_INTERVAL_WHEN_HARD_LIMITED

    def validate(self) -> list[str]:
        errors: list[str] = []
        if self.check_interval <= 0:
            errors.append(f"check_interval: must be greater than zero, got {self.check_interval}s")
        for name in ("limit_mib", "spike_limit_mib", "limit_percentage", "spike_limit_percentage"):
            if getattr(self, name) < 0:
                errors.append(f"{name}: must not be negative")
        if self.limit_mib == 0 and self.limit_percentage == 0:
            errors.append("limit_mib: either limit_mib or limit_percentage must be set (greater than zero)")
        if self.limit_mib > 0:
            if self.spike_limit_mib >= self.limit_mib:
                errors.append(
                    f"spike_limit_mib: must be smaller than limit_mib ({self.spike_limit_mib} >= {self.limit_mib})"
                )
        elif self.limit_percentage > 0:
            if self.limit_percentage > 100:
                errors.append(f"limit_percentage: must be at most 100, got {self.limit_percentage}")
            if self.spike_limit_percentage >= self.limit_percentage:
                errors.append(
                    "spike_limit_percentage: must be smaller than limit_percentage "
                    f"({self.spike_limit_percentage} >= {self.limit_percentage})"
                )
        for name in ("min_gc_interval_when_soft_limited", "min_gc_interval_when_hard_limited"):
            if getattr(self, name) < 0:
                errors.append(f"{name}: must not be negative")
        return errors

    def limits(self, total_memory: Callable[[], int] | None = None) -> tuple[int, int]:
        """(hard, soft) limits in bytes."""
        if self.limit_mib > 0:
            hard = self.limit_mib * MIB
            spike = self.spike_limit_mib * MIB if self.spike_limit_mib else int(hard * DEFAULT_SPIKE_FRACTION)
        else:
            total = (total_memory or total_memory_bytes)()
            hard = total * self.limit_percentage // 100
            spike = total * self.spike_limit_percentage // 100
        return hard, hard - spike


def process_rss_bytes() -> int:
    """Resident set size of this process (second field of ``/proc/self/statm``, in pages)."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE_SIZE


def total_memory_bytes() -> int:
    """Memory available to this process: the cgroup v2/v1 limit if set, else physical memory."""
    physical = os.sysconf("SC_PHYS_PAGES") * _PAGE_SIZE
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < physical:
            return int(text)
    return physical


def _malloc_trim() -> Callable[[], None]:
    """glibc's ``malloc_trim(0)``: hand freed heap pages back to the OS so RSS reflects the collection."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is None:
        return lambda: None
    return lambda: trim(0)


# glibc's mallopt parameter for the most malloc arenas (M_ARENA_MAX in malloc.h).
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas at ``arenas`` (unless ``MALLOC_ARENA_MAX`` says otherwise); True if set. Call it
    before threads start. glibc gives threads that allocate at once arenas of their own, up to 8 per core; the
    collector's listener, grpc and sender threads each left freed memory in theirs that ``malloc_trim`` could not
    return, and the memory_limiter kept refusing for as long as RSS stayed above the limit: after a flood of 3.9 MiB
    requests had ended, with nothing queued and nothing in flight, 4 runs of 7 still refused after 60 s (two after
    275 s); with 2 arenas all 7 accepted again within 2.5 s, and peak RSS fell from 1.18-1.31x limit_mib to
    1.11-1.16x (``benchmarks/memory_limiter_overload.py --request-kib 3993``)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    return bool(mallopt is not None and mallopt(_M_ARENA_MAX, arenas) == 1)


class MemoryLimiterProcessor(SyncProcessor):
    mutates_data = False  # refuses or passes messages, never changes them

    def __init__(
        self,
        settings: CreateSettings,
        config: MemoryLimiterConfig,
        next_consumer: Consumer,
        *,
        memory_reader: Callable[[], int] = process_rss_bytes,
        total_memory: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(settings, next_consumer)
        self._interval = float(config.check_interval)
        self._hard, self._soft = config.limits(total_memory)
        self._read = memory_reader
        self._gc_soft_interval = float(config.min_gc_interval_when_soft_limited)
        self._gc_hard_interval = float(config.min_gc_interval_when_hard_limited)
        self._trim = _malloc_trim()
        self._usage = 0
        self._checked_at = float("-inf")
        self._last_gc = float("-inf")
        self._last_trim = float("-inf")
        # What a refused client is told to wait (gRPC RetryInfo / HTTP Retry-After).
        self._retry_after = max(self._interval, 1.0)
        self._task: asyncio.Task[None] | None = None
        # Admissions come from the receivers' listener threads as well as the service's loop.
        self._lock = threading.Lock()
        self._in_flight = 0  # bytes reserved by admitted requests still in the pipeline
        self._floor = 0  # RSS after the last collection with nothing in flight
        self._attrs = {"processor": str(settings.id)}
        meter = settings.meter
        self._refused = item_counters(
            meter, "otelcol_processor_refused_{items}", "Number of {items} refused by the memory limiter"
        )
        # Refused at admission, before decoding: how many items is not known yet.
        self._refused_requests = meter.create_counter(
            "otelcol_processor_refused_requests",
            unit="{request}",
            description="Number of requests refused by the memory limiter before they were decoded",
        )
        self._accepted = item_counters(
            meter, "otelcol_processor_accepted_{items}", "Number of {items} passed on by the memory limiter"
        )

    @property
    def limits(self) -> tuple[int, int]:
        """(hard, soft) in bytes."""
        return self._hard, self._soft

    @property
    def spike(self) -> int:
        """The spike allowance in bytes: hard minus soft limit."""
        return self._hard - self._soft

    @property
    def usage(self) -> int:
        """The last measured memory usage in bytes."""
        return self._usage

    @property
    def soft_limit_in_force(self) -> int:
        """The soft limit, raised above a floor of memory the process could not give back (at most the hard)."""
        return min(self._hard, max(self._soft, self._floor + (self._hard - self._soft) // 2))

    @property
    def in_flight(self) -> int:
        """Bytes reserved by admitted requests not yet through the pipeline."""
        return self._in_flight

    def reserve(self, cost: int) -> None:
        """Reserve ``cost`` bytes for a request about to be decoded, or raise RefusedError."""
        with self._lock:
            usage = self._usage = self._read()
            soft = self.soft_limit_in_force
            # Measured memory against the soft limit; what is reserved in flight may use half the spike allowance. The
            # other half is for what no reservation covers (gRPC messages read before they are admitted, an exporter's
            # work on what the pipeline passed on, memory the allocator keeps): reservations allowed into all of it
            # took the collector to 1.05x limit_mib under 48 clients' flood of 4 MiB requests (attack_replay.py);
            # none of it, and near the soft limit one request at a time got in, too few for clients' retries.
            if usage >= soft or (self._in_flight and usage + self._in_flight + cost >= soft + (self._hard - soft) // 2):
                self._refused_requests.add(1, self._attrs)
                raise RefusedError(
                    f"data refused due to high memory usage: {usage / MIB:.0f} MiB in use, "
                    f"{self._in_flight / MIB:.0f} MiB reserved by requests in flight, soft limit {soft / MIB:.0f} MiB, "
                    f"hard limit {self._hard / MIB:.0f} MiB",
                    retry_after=self._retry_after,
                )
            self._in_flight += cost

    def release(self, cost: int) -> None:
        with self._lock:
            self._in_flight -= cost

    async def start(self, host: Any) -> None:
        self.check()
        _LIMITERS.add(self)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def shutdown(self) -> None:
        _LIMITERS.discard(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def process(self, signal: Signal, request: Request) -> bool:
        if time.monotonic() - self._checked_at >= self._interval:
            self.check()
        if self._usage >= self.soft_limit_in_force:
            self._refused[signal].add(item_count(signal, request), self._attrs)
            raise RefusedError(
                f"data refused due to high memory usage: {self._usage / MIB:.0f} MiB in use, "
                f"soft limit {self._soft / MIB:.0f} MiB",
                retry_after=self._retry_after,
            )
        self._accepted[signal].add(item_count(signal, request), self._attrs)
        return True

    def check(self) -> int:
        """Measure now; collect garbage when over a limit (rate limited). Returns the usage in bytes."""
        now = time.monotonic()
        usage = self._read()
        if usage >= self.soft_limit_in_force and self._in_flight == 0 and now - self._last_gc >= self._interval:
            # Nothing in flight: what a collection cannot free is no pressure that refusing data relieves.
            self._last_gc = self._last_trim = now
            gc.collect()
            self._trim()
            usage = self._floor = self._read()
        elif usage >= self._soft:
            min_gap = self._gc_hard_interval if usage >= self._hard else self._gc_soft_interval
            if now - self._last_gc >= min_gap:
                self._last_gc = self._last_trim = now
                gc.collect()
                self._trim()
                before = usage
                usage = self._read()
                self.settings.logger.warning(
                    "memory_limiter %s: %d MiB in use (soft limit %d MiB, hard limit %d MiB); forced GC freed %d MiB",
                    self.settings.id,
                    before // MIB,
                    self._soft // MIB,
                    self._hard // MIB,
                    max(before - usage, 0) // MIB,
                )
            elif now - self._last_trim >= self._retry_after:
                # Between forced GCs: what was freed by reference counting (a sending queue that drained) stays in
                # glibc's heap, so RSS would stay above the soft limit, refusing everything, until the next forced
                # GC (min_gc_interval_when_soft_limited, 10s), longer than an OTLP client keeps retrying. Trimming
                # costs no Python work (~10 ms on a 200 MiB heap); once per Retry-After means a client's retry
                # after a drain sees the trimmed RSS.
                self._last_trim = now
                self._trim()
                usage = self._read()
        if usage < self._soft:
            self._floor = 0
        self._usage = usage
        self._checked_at = time.monotonic()
        return usage

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self.check()
            except Exception:  # a failed reading must not stop the limiter; the next tick retries
                self.settings.logger.exception("memory_limiter %s: reading memory usage failed", self.settings.id)


# The limiters of the running pipelines: admit() asks each of them (memory is the process's, whichever pipeline).
_LIMITERS: set[MemoryLimiterProcessor] = set()


class Admission:
    """Memory reserved for one request from before it is decoded until it has gone through the pipeline."""

    def __init__(self) -> None:
        self._held: list[tuple[MemoryLimiterProcessor, int]] = []

    def grow(self, wire_bytes: int) -> None:
        """Reserve for ``wire_bytes`` more (a body longer than declared, or decompressed); RefusedError if over."""
        cost = wire_bytes * MEMORY_PER_WIRE_BYTE
        for limiter in list(_LIMITERS):
            limiter.reserve(cost)
            self._held.append((limiter, cost))

    def release(self) -> None:
        held, self._held = self._held, []
        for limiter, cost in held:
            limiter.release(cost)

    def __enter__(self) -> Admission:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def admit(wire_bytes: int) -> Admission:
    """Reserve memory for a request of ``wire_bytes`` before decoding it, in every running ``memory_limiter``;
    raises RefusedError (retryable) when that would reach a soft limit. Use as a context manager around decoding
    and handing the request to the pipeline."""
    admission = Admission()
    try:
        admission.grow(wire_bytes)
    except BaseException:
        admission.release()
        raise
    return admission


def concurrent_calls(max_message_bytes: int) -> int | None:
    """How many calls a gRPC server may read messages for at once so that the messages read and not yet admitted
    fit in the spike allowance of every running ``memory_limiter``; None when none runs. A message is whole in
    memory before the handler can ask :func:`admit` about its size: each call reading one may hold up to
    ``max_message_bytes`` the limiter has not seen yet."""
    spikes = [limiter.spike for limiter in list(_LIMITERS)]
    if not spikes:
        return None
    return max(1, min(spikes) // (MEMORY_PER_RECEIVED_BYTE * max_message_bytes))


factories = (ProcessorFactory(type=TYPE, config_type=MemoryLimiterConfig, create=MemoryLimiterProcessor),)
