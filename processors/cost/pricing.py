"""LLM pricing: the price table (bundled catalog + overrides) and the pure ``cost.usd`` calculation of both faces.

Lookup (``PriceTable.lookup(model, provider, when)``), first hit wins, never a guess beyond these steps:

1. the user's overrides (``OTEL_METRICS_PRICING``, ``configure(pricing=...)``, the cost processor's
   ``pricing_file``/``overrides``), by model name: exactly, trimmed and lower-cased, through their ``aliases``,
   without a route prefix up to the last ``/`` (``openai/gpt-4o``) or a Bedrock vendor prefix
   (``us.anthropic.``), then dropping version suffixes one at a time (``-2024-08-06``, ``-20241022``,
   ``@20240620``, ``-0125``, ``-002``, ``-latest``, ``-preview``, ``-v1:0``);
2. the bundled catalog (``processors.cost.catalog``, generated from genai-prices): the provider's model whose
   match rule accepts the name (then the same prefix/suffix steps), at the price in force on ``when`` (the
   span's start; prices change on dates the catalog records).

An unknown model is logged once (warning) and priced as None. The cost formula is in ``processors.cost.rates``.

Token counts on spans (``cost_attributes``): ``gen_ai.usage.input_tokens`` (or the older ``prompt_tokens``)
includes cache reads and writes as the semantic conventions say; when an instrumentation reports Anthropic's
raw ``input_tokens`` (which excludes them) the cached counts are added back: that is the case when its scope is
in ``EXCLUSIVE_INPUT_SCOPES`` or when cache reads plus writes exceed the input count. Cache writes are
``gen_ai.usage.cache_creation.input_tokens`` (the Anthropic SDK's ``gen_ai.usage.cache_write.input_tokens``),
of which ``anthropic.usage.cache_creation.ephemeral_1h_input_tokens`` were written with a one-hour TTL;
reasoning tokens are ``gen_ai.usage.reasoning.output_tokens``, part of the output tokens.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from processors.cost.catalog import Catalog, CatalogModel
from processors.cost.dedup import RESPONSE_ID_KEY
from processors.cost.rates import ModelPrice, Usage, counts_problem, parse_price

__all__ = [
    "COST_KEY",
    "EXCLUSIVE_INPUT_SCOPES",
    "PRICING_ENV_VAR",
    "LLMCall",
    "ModelPrice",
    "PriceMatch",
    "PriceTable",
    "Usage",
    "cost_attributes",
    "default_price_table",
    "price_call",
    "usage_from_attributes",
]

_logger = logging.getLogger("processors.cost")

PRICING_ENV_VAR = "OTEL_METRICS_PRICING"
COST_KEY = "cost.usd"
RESPONSE_MODEL_KEY = "gen_ai.response.model"
REQUEST_MODEL_KEY = "gen_ai.request.model"
PROVIDER_KEY = "gen_ai.provider.name"
SYSTEM_KEY = "gen_ai.system"
INPUT_TOKENS_KEY = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS_KEY = "gen_ai.usage.output_tokens"
CACHED_INPUT_TOKENS_KEY = "gen_ai.usage.cache_read.input_tokens"
CACHE_WRITE_TOKENS_KEY = "gen_ai.usage.cache_creation.input_tokens"
CACHE_WRITE_1H_TOKENS_KEY = "anthropic.usage.cache_creation.ephemeral_1h_input_tokens"
REASONING_TOKENS_KEY = "gen_ai.usage.reasoning.output_tokens"
# Older or vendor names still emitted by some instrumentations.
_OLD_INPUT_TOKENS_KEY = "gen_ai.usage.prompt_tokens"
_OLD_OUTPUT_TOKENS_KEY = "gen_ai.usage.completion_tokens"
_SDK_CACHE_WRITE_TOKENS_KEY = "gen_ai.usage.cache_write.input_tokens"
# Every attribute cost_attributes reads (the collector face reads only these from the wire).
READ_KEYS = frozenset(
    {
        COST_KEY,
        RESPONSE_MODEL_KEY,
        REQUEST_MODEL_KEY,
        PROVIDER_KEY,
        SYSTEM_KEY,
        INPUT_TOKENS_KEY,
        OUTPUT_TOKENS_KEY,
        CACHED_INPUT_TOKENS_KEY,
        CACHE_WRITE_TOKENS_KEY,
        CACHE_WRITE_1H_TOKENS_KEY,
        REASONING_TOKENS_KEY,
        _OLD_INPUT_TOKENS_KEY,
        _OLD_OUTPUT_TOKENS_KEY,
        _SDK_CACHE_WRITE_TOKENS_KEY,
        RESPONSE_ID_KEY,
    }
)
# Instrumentation scopes whose gen_ai.usage.input_tokens excludes cache reads and writes (Anthropic's raw count).
EXCLUSIVE_INPUT_SCOPES: frozenset[str] = frozenset()

_PREFIX = re.compile(r"^(?:[a-z]{2}\.)?(?:anthropic|meta|mistral|cohere|amazon|ai21|google)\.")
_SUFFIX = re.compile(
    r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8}|-\d{4}|-\d{3}|-latest|-preview(?:-\d{2}-\d{2})?|-v\d+(?::\d+)?)$"
)
_MAX_CACHE = 4096


@functools.lru_cache(maxsize=1)
def _bundled_catalog() -> Catalog:
    return Catalog.bundled()


_warn_lock = threading.Lock()
_warned: set[str] = set()


def _warn_once(key: str, message: str, *args: object) -> None:
    with _warn_lock:
        if key in _warned:
            return
        if len(_warned) > _MAX_CACHE:  # bounded: a flood of distinct bad names must not grow memory
            _warned.clear()
        _warned.add(key)
    _logger.warning(message, *args)


class PriceMatch:
    """What a lookup found: the price, and where it came from (``override`` or the catalog's provider/model)."""

    __slots__ = ("model", "price", "provider")

    def __init__(self, provider: str | None, model: str, price: ModelPrice) -> None:
        self.provider = provider  # None for a user override
        self.model = model
        self.price = price

    def __repr__(self) -> str:
        return f"PriceMatch({self.provider!r}, {self.model!r}, {self.price!r})"


def _parse_document(doc: object, origin: str) -> tuple[dict[str, ModelPrice], dict[str, str]]:
    """(prices, aliases) of an override document: ``{"models": {...}, "aliases": {...}}`` or flat."""
    if not isinstance(doc, Mapping):
        raise ValueError(f"{origin}: expected a mapping of model -> prices, got {type(doc).__name__}")
    if "models" in doc and isinstance(doc["models"], Mapping):
        models, aliases = doc["models"], doc.get("aliases") or {}
    else:
        meta = {"as_of", "source", "currency", "unit", "aliases"}
        models = {k: v for k, v in doc.items() if k not in meta}
        aliases = doc.get("aliases") or {}
    if not isinstance(aliases, Mapping):
        raise ValueError(f"{origin}: aliases: expected a mapping of alias -> model")
    try:
        prices = {str(name).strip().lower(): parse_price(str(name), entry) for name, entry in models.items()}
    except ValueError as exc:
        raise ValueError(f"{origin}: {exc}") from None
    return prices, {str(a).lower(): str(m).lower() for a, m in aliases.items()}


def _load_file(path: str | os.PathLike[str]) -> object:
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def _names(model: str) -> list[str]:
    """The documented lookup names of ``model``, most specific first."""
    name = model.strip().lower()
    if not name:
        return []
    bases = [name]
    if "/" in name:
        bases.append(name.rsplit("/", 1)[1])
    stripped = _PREFIX.sub("", bases[-1])
    if stripped != bases[-1]:
        bases.append(stripped)
    names: list[str] = []
    for base in bases:
        current = base
        for _ in range(4):
            names.append(current)
            shorter = _SUFFIX.sub("", current)
            if shorter == current or not shorter:
                break
            current = shorter
    return names


class PriceTable:
    """Model -> price: user overrides over the bundled catalog, with one warning per unknown model."""

    def __init__(
        self,
        prices: Mapping[str, ModelPrice] | None = None,
        aliases: Mapping[str, str] | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self._prices = {name.strip().lower(): price for name, price in (prices or {}).items()}
        self._aliases = {a.lower(): m.lower() for a, m in (aliases or {}).items()}
        self._catalog = catalog
        self._resolved: dict[tuple[str, str | None], PriceMatch | CatalogModel | None] = {}
        self._parsed: dict[int, ModelPrice] = {}

    @property
    def source(self) -> str | None:
        """Where the bundled prices come from (genai-prices and its version); None without the catalog."""
        return self._catalog.source if self._catalog is not None else None

    # --------------------------------------------------------------------------------- construction

    @classmethod
    def bundled(cls) -> PriceTable:
        """The catalog shipped in this package, no overrides."""
        return cls(catalog=_bundled_catalog())

    @classmethod
    def from_source(cls, source: str | os.PathLike[str] | Mapping[str, Any] | None) -> PriceTable:
        """The bundled catalog under the overrides of ``source`` (a JSON/YAML file path or a mapping).

        ``None`` reads the file named by ``OTEL_METRICS_PRICING`` if set: a bad file there is logged and
        ignored (environment parsers warn and fall back). An explicit bad ``source`` raises ValueError.
        """
        table = cls.bundled()
        if source is not None:
            return table.with_overrides(source)
        env_path = os.environ.get(PRICING_ENV_VAR, "").strip()
        if env_path:
            try:
                return table.with_overrides(env_path)
            except (OSError, ValueError) as exc:
                _logger.warning("ignoring %s=%s: %s", PRICING_ENV_VAR, env_path, exc)
        return table

    def with_overrides(self, source: str | os.PathLike[str] | Mapping[str, Any]) -> PriceTable:
        """A new table: this one with ``source``'s models replacing or adding overrides."""
        if isinstance(source, Mapping):
            doc: object = source
            origin = "pricing overrides"
        else:
            origin = os.fspath(source)
            try:
                doc = _load_file(source)
            except OSError as exc:
                raise ValueError(f"{origin}: cannot read pricing file: {exc}") from None
            except Exception as exc:  # JSON/YAML syntax errors
                raise ValueError(f"{origin}: not valid JSON/YAML: {exc}") from None
        prices, aliases = _parse_document(doc, origin)
        merged_aliases = {a: m for a, m in self._aliases.items() if a not in prices}
        merged_aliases.update(aliases)
        return PriceTable({**self._prices, **prices}, merged_aliases, self._catalog)

    # --------------------------------------------------------------------------------------- lookup

    def overrides(self) -> dict[str, ModelPrice]:
        return dict(sorted(self._prices.items()))

    @property
    def catalog(self) -> Catalog | None:
        return self._catalog

    def _resolve(self, model: str, provider: str | None) -> PriceMatch | CatalogModel | None:
        key = (model, provider)
        found = self._resolved.get(key, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        found = None
        names = _names(model)
        prices, aliases = self._prices, self._aliases
        for name in names:
            price = prices.get(name) or prices.get(aliases.get(name, ""))
            if price is not None:
                found = PriceMatch(None, name, price)
                break
        if found is None and self._catalog is not None:
            for name in names:
                found = self._catalog.find(name, provider)
                if found is not None:
                    break
        if len(self._resolved) > _MAX_CACHE:
            self._resolved.clear()
        self._resolved[key] = found
        return found

    def lookup(self, model: str, provider: str | None = None, when: datetime | None = None) -> PriceMatch | None:
        """The price of ``model`` (at ``provider``, in force at ``when``: now if None), or None. Never warns."""
        if not isinstance(model, str):
            return None
        found = self._resolve(model, provider if isinstance(provider, str) and provider else None)
        if found is None or isinstance(found, PriceMatch):
            return found
        raw = found.raw_price(when)
        price = self._parsed.get(id(raw))
        if price is None:
            price = self._parsed[id(raw)] = parse_price(found.id, raw, strict=False)
        return PriceMatch(found.provider, found.id, price)

    def _price_at(self, model: str, provider: str | None, start_ns: int | None) -> ModelPrice | None:
        """``lookup(...).price`` at a span's start, without building its datetime unless the price has a history."""
        found = self._resolve(model, provider)
        if found is None or isinstance(found, PriceMatch):
            return None if found is None else found.price
        history = found.history
        raw = history[0][1] if len(history) == 1 else found.raw_price(_when(start_ns))
        price = self._parsed.get(id(raw))
        if price is None:
            price = self._parsed[id(raw)] = parse_price(found.id, raw, strict=False)
        return price

    def price(self, model: str, provider: str | None = None, when: datetime | None = None) -> ModelPrice | None:
        """The price of ``model`` (see the module doc for the lookup); None, warned once, if unknown."""
        found = self.lookup(model, provider, when)
        if found is None:
            if isinstance(model, str):
                _warn_once(
                    "model:" + model,
                    "no price for model %r (provider %r) in the price table (%s): counted as unpriced; "
                    "add it with %s or the cost processor's overrides",
                    model,
                    provider,
                    self.source,
                    PRICING_ENV_VAR,
                )
            return None
        return found.price

    def cost(
        self, model: str, usage: Usage, *, provider: str | None = None, when: datetime | None = None
    ) -> Decimal | None:
        """Exact USD cost of one call; None for an unknown model or invalid counts (logged once)."""
        if usage.problem() is not None:
            return _priced(model, None, usage)
        price = self.price(model, provider, when)
        return None if price is None else _priced(model, price, usage)

    def llm_cost(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        *,
        cache_write_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
        reasoning_tokens: int = 0,
        provider: str | None = None,
        when: datetime | None = None,
    ) -> Decimal | None:
        """``cost`` with the counts spelled out (``input_tokens`` includes cache reads and writes)."""
        usage = Usage(
            input_tokens,
            output_tokens,
            cached_input_tokens,
            cache_write_tokens,
            cache_write_1h_tokens,
            reasoning_tokens,
        )
        return self.cost(model, usage, provider=provider, when=when)


_MISSING = object()


def _priced(model: str, price: ModelPrice | None, usage: Usage) -> Decimal | None:
    """``price.cost(usage)``; None (logged once) for counts that cannot describe a call, or no price."""
    problem = usage.problem()
    if problem is not None:
        _warn_once("usage:" + problem, "no cost for model %r: %s", model, problem)
        return None
    return None if price is None else price.cost(usage)


@functools.lru_cache(maxsize=1)
def default_price_table() -> PriceTable:
    """The bundled catalog under ``OTEL_METRICS_PRICING`` (read once, then cached)."""
    return PriceTable.from_source(None)


def _token_count(value: object) -> int | None:
    """An attribute value as a token count: int, or an integral float (JS numbers); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


Counts = tuple[int, int, int, int, int, int]


def _counts(attributes: Mapping[str, object], scope: str | None) -> Counts | None:
    """The token counts a span reports, in ``Usage`` field order (see the module doc), or None: no counts, or
    not integers. Written out key by key: this runs for every GenAI span of both faces."""
    get = attributes.get
    n_in = get(INPUT_TOKENS_KEY)
    if n_in is None:
        n_in = get(_OLD_INPUT_TOKENS_KEY)
    n_out = get(OUTPUT_TOKENS_KEY)
    if n_out is None:
        n_out = get(_OLD_OUTPUT_TOKENS_KEY)
    if n_in is None and n_out is None:
        return None
    write = get(CACHE_WRITE_TOKENS_KEY)
    if write is None:
        write = get(_SDK_CACHE_WRITE_TOKENS_KEY)
    read, write_1h, reasoning = get(CACHED_INPUT_TOKENS_KEY), get(CACHE_WRITE_1H_TOKENS_KEY), get(REASONING_TOKENS_KEY)
    if (
        type(n_in) is int
        and type(n_out) is int
        and read is None
        and write is None
        and write_1h is None
        and reasoning is None
    ):
        return (n_in, n_out, 0, 0, 0, 0)  # the usual span: input and output counts only
    raw = (n_in, n_out, read, write, write_1h, reasoning)
    counts: list[int] = []
    for value in raw:
        count = 0 if value is None else value if type(value) is int else _token_count(value)
        if count is None:
            _warn_once("bad-token-types", "ignoring non-integer token counts %r: no cost", raw)
            return None
        counts.append(count)
    n_in_, n_out_, read_, write_, write_1h_, reasoning_ = counts
    if (read_ or write_) and (scope in EXCLUSIVE_INPUT_SCOPES or read_ + write_ > n_in_):
        n_in_ += read_ + write_
    return (n_in_, n_out_, read_, write_, write_1h_, reasoning_)


def usage_from_attributes(attributes: Mapping[str, object], scope: str | None = None) -> Usage | None:
    """The ``Usage`` a span's attributes report (see the module doc), or None: no counts, or not integers."""
    counts = _counts(attributes, scope)
    return None if counts is None else Usage(*counts)


def _fingerprint(model: object, counts: Counts | None) -> tuple[object, ...] | None:
    """Model and usage of a span's LLM call, to recognise a span repeating another's (processors.cost.dedup)."""
    if counts is None:
        return None
    if model is not None and not isinstance(model, str):
        return None  # a client's array or map where a model name belongs: no call to recognise (nor to hash)
    return (model, counts)


def _when(start_ns: int | None) -> datetime | None:
    return datetime.fromtimestamp(start_ns / 1e9, UTC) if start_ns else None


class LLMCall(NamedTuple):
    """What a GenAI span reports, priced (``price_call``)."""

    cost: float | None  # USD; None: not priced here (no model, no input count, unknown model, or already priced)
    counts: Counts | None  # token counts in ``Usage`` field order; None: none reported
    fingerprint: tuple[object, ...] | None  # model and counts, for processors.cost.dedup

    @property
    def unpriced(self) -> bool:
        """A call with token counts that no price covered (counted, so a total is never silently short)."""
        return self.cost is None and self.counts is not None


def price_call(
    attributes: Mapping[str, object],
    table: PriceTable,
    *,
    start_ns: int | None = None,
    scope: str | None = None,
) -> LLMCall | None:
    """The call a span with a GenAI model reports, priced as ``cost_attributes`` prices it; None without a model.

    A span that already has ``cost.usd`` is reported with ``cost`` None and is not an unpriced call.
    """
    get = attributes.get
    response_model = get(RESPONSE_MODEL_KEY)
    request_model = get(REQUEST_MODEL_KEY)
    if not response_model and not request_model:
        return None
    counts = _counts(attributes, scope)
    fingerprint = _fingerprint(request_model if request_model is not None else response_model, counts)
    if COST_KEY in attributes:
        return LLMCall(None, None, fingerprint)
    if counts is None or (get(INPUT_TOKENS_KEY) is None and get(_OLD_INPUT_TOKENS_KEY) is None):
        # No input count (the Anthropic SDK's tracing of a message that is not streamed): pricing the rest would
        # understate the call.
        return LLMCall(None, counts, fingerprint)
    n_in, n_out, read, write, write_1h, reasoning = counts
    # counts_problem in full only when a quick look finds something wrong: this runs for every GenAI span.
    problem = (
        counts_problem(counts)
        if min(counts) < 0 or read + write > n_in or write_1h > write or reasoning > n_out
        else None
    )
    if problem is not None:
        _warn_once("usage:" + problem, "no cost for model %r: %s", response_model or request_model, problem)
        return LLMCall(None, None, fingerprint)
    provider = get(PROVIDER_KEY)
    if provider is None:
        provider = get(SYSTEM_KEY)
    provider_name = provider if isinstance(provider, str) and provider else None
    for candidate in (response_model, request_model):
        if isinstance(candidate, str) and candidate:
            price = table._price_at(candidate, provider_name, start_ns)
            if price is not None:
                return LLMCall(price.usd(counts), counts, fingerprint)
    named = response_model if isinstance(response_model, str) and response_model else request_model
    if isinstance(named, str) and named:
        table.price(named, provider_name)  # logs the unknown model once
    return LLMCall(None, counts, fingerprint)


def cost_attributes(
    attributes: Mapping[str, object],
    table: PriceTable,
    *,
    start_ns: int | None = None,
    scope: str | None = None,
) -> dict[str, float]:
    """``{"cost.usd": cost}`` for a span with a GenAI model and token counts but no ``cost.usd``.

    The response model wins over the request model (docs/conventions.md); if the response model is not in the
    table the request model is tried. ``start_ns``: the span's start (prices in force then); ``scope``: its
    instrumentation scope name. Returns ``{}`` when there is nothing to price, the model is unknown (warned once),
    the input token count is missing or the counts are invalid (negative, not integers, more cached than input).
    """
    call = price_call(attributes, table, start_ns=start_ns, scope=scope)
    return {} if call is None or call.cost is None else {COST_KEY: call.cost}
