"""A model's prices (``ModelPrice``), one call's token usage (``Usage``) and the exact cost of one from the other.

Rates are USD per million tokens, ``request`` USD per call. A rate may be ``Tiered`` (long-context pricing): the
tier is chosen by the call's total input tokens and applies to all its tokens ("cliff" pricing, as the providers
bill and as genai-prices computes it).

Usage follows the GenAI semantic conventions: ``input_tokens`` counts every prompt token, cache reads and cache
writes included; ``output_tokens`` counts every generated token, reasoning included. So, with every rate at the
tier of ``input_tokens``::

    cost = (input - cache_read - cache_write) * input
         + cache_read * cache_read                       (input when the model has no cache-read price)
         + (cache_write - cache_write_1h) * cache_write  (input when none)
         + cache_write_1h * cache_write_1h               (cache_write, else input, when none)
         + (output - reasoning) * output
         + reasoning * reasoning                         (output when none)
         + request
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["ModelPrice", "Tiered", "Usage", "counts_problem", "parse_price"]

_MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)


@dataclass(frozen=True)
class Tiered:
    """A rate that depends on the call's total input tokens: ``base`` up to the first tier's ``start``."""

    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...]

    def at(self, input_tokens: int) -> Decimal:
        rate = self.base
        for start, price in self.tiers:
            if input_tokens > start:
                rate = price
        return rate

    def __str__(self) -> str:
        above = ", ".join(f"{price} above {start:,}" for start, price in self.tiers)
        return f"{self.base} ({above})"


Rate = Decimal | Tiered


@dataclass(frozen=True)
class Usage:
    """One call's tokens (see the module doc for what each count includes)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0

    def counts(self) -> tuple[int, int, int, int, int, int]:
        """The counts in field order (the form ``counts_problem`` and ``ModelPrice.usd`` take)."""
        return (
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.cache_write_1h_tokens,
            self.reasoning_tokens,
        )

    def problem(self) -> str | None:
        """Why these counts cannot describe a call, or None."""
        return counts_problem(self.counts())


_USAGE_FIELDS = tuple(f.name for f in fields(Usage))


def counts_problem(counts: Sequence[object]) -> str | None:
    """Why ``counts`` (``Usage`` fields in order) cannot describe a call, or None."""
    for name, value in zip(_USAGE_FIELDS, counts, strict=True):
        if type(value) is not int or value < 0:
            return f"{name} must be a non-negative integer, got {value!r}"
    n_in, n_out, read, write, write_1h, reasoning = counts
    assert type(n_in) is int and type(n_out) is int and type(read) is int  # checked above; for the type checker
    assert type(write) is int and type(write_1h) is int and type(reasoning) is int
    if read + write > n_in:
        return f"cache reads ({read}) and writes ({write}) exceed the input tokens ({n_in})"
    if write_1h > write:
        return f"1-hour cache writes ({write_1h}) exceed cache writes ({write})"
    if reasoning > n_out:
        return f"reasoning tokens ({reasoning}) exceed output tokens ({n_out})"
    return None


# Rates with more decimals than this (after scaling to integers) take the Decimal path of ``ModelPrice.usd``.
_MAX_SCALE = 24


@dataclass(frozen=True)
class _Plan:
    """Rates of one input-token band as integers: cost = Σ count·rate / ``denominator`` exactly."""

    input: int
    cache_read: int
    cache_write: int
    cache_write_1h: int
    output: int
    reasoning: int
    request: int  # already per call, at the same scale
    denominator: int


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens (``request``: per call); None: that kind of token costs the fallback rate."""

    input: Rate | None
    output: Rate | None
    cache_read: Rate | None = None
    cache_write: Rate | None = None
    cache_write_1h: Rate | None = None
    reasoning: Rate | None = None
    request: Rate | None = None

    def cost(self, usage: Usage) -> Decimal:
        """Exact USD cost of ``usage`` (assumed valid: ``usage.problem()`` is None). A kind of token the price
        has no rate for, nor a fallback rate, costs nothing (an embedding model lists no output rate), as in
        genai-prices."""
        n = usage.input_tokens

        def rate(value: Rate) -> Decimal:
            return value.at(n) if isinstance(value, Tiered) else value

        input_rate = _ZERO if self.input is None else rate(self.input)
        output_rate = _ZERO if self.output is None else rate(self.output)
        read_rate = input_rate if self.cache_read is None else rate(self.cache_read)
        write_rate = input_rate if self.cache_write is None else rate(self.cache_write)
        write_1h_rate = write_rate if self.cache_write_1h is None else rate(self.cache_write_1h)
        reasoning_rate = output_rate if self.reasoning is None else rate(self.reasoning)
        writes = usage.cache_write_tokens
        total = (
            (n - usage.cache_read_tokens - writes) * input_rate
            + usage.cache_read_tokens * read_rate
            + (writes - usage.cache_write_1h_tokens) * write_rate
            + usage.cache_write_1h_tokens * write_1h_rate
            + (usage.output_tokens - usage.reasoning_tokens) * output_rate
            + usage.reasoning_tokens * reasoning_rate
        ) / _MILLION
        if self.request is not None:
            total += rate(self.request)
        return total

    def usd(self, counts: Sequence[int]) -> float:
        """``float(self.cost(Usage(*counts)))``, computed in integers (valid counts assumed).

        Both are the double nearest the exact cost: Python's int division rounds correctly, as ``float`` of an
        exact Decimal does; this path skips Decimal arithmetic, which costs several microseconds per span.
        """
        n_in, n_out, read, write, write_1h, reasoning = counts
        plan = None
        for start, band in self._plans:
            if n_in > start:
                plan = band
        if plan is None:
            return float(self.cost(Usage(*counts)))
        units = (
            (n_in - read - write) * plan.input
            + read * plan.cache_read
            + (write - write_1h) * plan.cache_write
            + write_1h * plan.cache_write_1h
            + (n_out - reasoning) * plan.output
            + reasoning * plan.reasoning
            + plan.request
        )
        return units / plan.denominator

    @functools.cached_property
    def _plans(self) -> tuple[tuple[int, _Plan | None], ...]:
        """(input tokens above which the band applies, its integer rates), one per band of the tiered rates."""
        starts = sorted(
            {-1}
            | {
                start
                for value in (getattr(self, f.name) for f in fields(self))
                if isinstance(value, Tiered)
                for start, _ in value.tiers
            }
        )
        return tuple((start, self._plan(start + 1)) for start in starts)

    def _plan(self, n: int) -> _Plan | None:
        """The integer rates in force for ``n`` input tokens (None when too many decimals: the Decimal path)."""

        def rate(value: Rate | None, fallback: Decimal) -> Decimal:
            if value is None:
                return fallback
            return value.at(n) if isinstance(value, Tiered) else value

        input_rate = rate(self.input, _ZERO)
        output_rate = rate(self.output, _ZERO)
        write_rate = rate(self.cache_write, input_rate)
        per_million = (
            input_rate,
            rate(self.cache_read, input_rate),
            write_rate,
            rate(self.cache_write_1h, write_rate),
            output_rate,
            rate(self.reasoning, output_rate),
            rate(self.request, _ZERO) * _MILLION,
        )
        scale = max(0, *(-int(r.normalize().as_tuple().exponent) for r in per_million))
        if scale > _MAX_SCALE:
            return None
        i, read, write, write_1h, out, reasoning, request = (int(r.scaleb(scale)) for r in per_million)
        return _Plan(i, read, write, write_1h, out, reasoning, request, 10 ** (scale + 6))

    def describe(self) -> dict[str, str]:
        """Each set rate as text (``prices`` CLI)."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None}


# Field -> names accepted in price files (the first is canonical; the others are the older names).
_FIELD_NAMES = {
    "input": ("input", "input_per_million"),
    "output": ("output", "output_per_million"),
    "cache_read": ("cache_read", "cached_input", "cached_input_per_million", "cache_read_per_million"),
    "cache_write": ("cache_write", "cache_write_per_million"),
    "cache_write_1h": ("cache_write_1h", "cache_write_1h_per_million"),
    "reasoning": ("reasoning", "reasoning_per_million"),
    "request": ("request", "per_request"),
}
_KNOWN = frozenset(name for names in _FIELD_NAMES.values() for name in names)


def _decimal(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError(f"{where}: expected a number, got {type(value).__name__}")
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if not result.is_finite() or result < 0:
        raise ValueError(f"{where}: expected a non-negative number, got {value!r}")
    return result


def _rate(value: object, where: str) -> Rate:
    if not isinstance(value, Mapping):
        return _decimal(value, where)
    unknown = sorted(str(k) for k in value if k not in ("base", "tiers"))
    if unknown or "base" not in value:
        raise ValueError(f"{where}: a tiered rate is {{base: rate, tiers: [[start_tokens, rate], ...]}}")
    tiers = []
    for i, tier in enumerate(value.get("tiers") or ()):
        if not isinstance(tier, list | tuple) or len(tier) != 2 or type(tier[0]) is not int or tier[0] < 0:
            raise ValueError(f"{where}.tiers[{i}]: expected [start_tokens, rate]")
        tiers.append((tier[0], _decimal(tier[1], f"{where}.tiers[{i}]")))
    return Tiered(_decimal(value["base"], f"{where}.base"), tuple(sorted(tiers, key=lambda t: t[0])))


def parse_price(model: str, entry: Any, *, strict: bool = True) -> ModelPrice:
    """A ``ModelPrice`` from a price-file entry (errors start with ``models.<model>``); ``strict``: input and
    output rates are required (user files; the catalog has models priced for input only)."""
    if isinstance(entry, ModelPrice):
        return entry
    where = f"models.{model}"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected a mapping of prices, got {type(entry).__name__}")
    unknown = sorted(str(k) for k in entry if k not in _KNOWN)
    if unknown:
        raise ValueError(f"{where}: unknown price field(s) {unknown}; expected some of {sorted(_FIELD_NAMES)}")
    values: dict[str, Any] = {}
    for field_name, names in _FIELD_NAMES.items():
        raw = next((entry[n] for n in names if n in entry and entry[n] is not None), None)
        if raw is not None:
            values[field_name] = _rate(raw, f"{where}.{field_name}")
        elif strict and field_name in ("input", "output"):
            raise ValueError(f"{where}.{field_name}: required")
    return ModelPrice(input=values.pop("input", None), output=values.pop("output", None), **values)
