"""Exponential backoff with jitter, as upstream's (cenkalti/backoff ExponentialBackOff) computes it."""

from __future__ import annotations

import random
import time

from .config import RetryConfig

__all__ = ["ExponentialBackoff"]


class ExponentialBackoff:
    def __init__(self, config: RetryConfig, *, rng: random.Random | None = None) -> None:
        self._config = config
        self._rng = rng or random.Random()
        self._current = float(config.initial_interval)
        self._start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def next_delay(self, retry_after: float | None = None) -> float | None:
        """The next wait, or None when ``max_elapsed_time`` would be exceeded (give up)."""
        c = self._config
        factor = c.randomization_factor
        delta = factor * self._current
        delay = self._rng.uniform(self._current - delta, self._current + delta)
        self._current = min(self._current * c.multiplier, float(c.max_interval))
        if retry_after is not None:
            # A server's throttling hint wins when it asks for a longer wait (upstream does the same).
            delay = max(delay, retry_after)
        if c.max_elapsed_time > 0 and self.elapsed() + delay > c.max_elapsed_time:
            return None
        return delay
