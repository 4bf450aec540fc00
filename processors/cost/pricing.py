"""LLM pricing: a dated price table and the pure ``cost.usd`` calculation shared by both faces.

Lookup of a model name (``PriceTable.price``), first hit wins, never a guess beyond these steps:

1. the name exactly as given, then trimmed and lower-cased;
2. the table's ``aliases`` (e.g. ``claude-3.5-sonnet`` -> ``claude-3-5-sonnet``);
3. without a provider route prefix up to the last ``/`` (``openai/gpt-4o``, ``models/gemini-2.5-pro``)
   and without a Bedrock vendor prefix (``anthropic.``, ``us.anthropic.``, ``meta.``, ``mistral.``);
4. repeatedly dropping one version suffix: a date (``-2024-08-06``, ``-20241022``, ``@20240620``),
   a ``-YYMM``/``-MMDD`` (``-2411``, ``-0125``) or ``-NNN`` (``-002``) revision, ``-latest``,
   ``-preview[-MM-DD]``, or a Bedrock ``-v1:0``.

So ``gpt-4o-2024-08-06`` is priced as ``gpt-4o`` and ``anthropic.claude-3-5-sonnet-20241022-v2:0`` as
``claude-3-5-sonnet``. An unknown model is logged once (warning) and priced as None.

Cost (exact ``Decimal``): cached input tokens are part of the input tokens; they are priced at the
cached rate when the table has one, else at the input rate::

    cost = (input - cached) * input_rate + cached * cached_rate + output * output_rate   (rates / 1e6)
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "COST_KEY",
    "PRICING_ENV_VAR",
    "ModelPrice",
    "PriceTable",
    "cost_attributes",
    "default_price_table",
]

_logger = logging.getLogger("processors.cost")

PRICING_ENV_VAR = "OTEL_METRICS_PRICING"
COST_KEY = "cost.usd"
RESPONSE_MODEL_KEY = "gen_ai.response.model"
REQUEST_MODEL_KEY = "gen_ai.request.model"
INPUT_TOKENS_KEY = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS_KEY = "gen_ai.usage.output_tokens"
CACHED_INPUT_TOKENS_KEY = "gen_ai.usage.cache_read.input_tokens"
# Deprecated GenAI semconv names still emitted by some instrumentations.
_OLD_INPUT_TOKENS_KEY = "gen_ai.usage.prompt_tokens"
_OLD_OUTPUT_TOKENS_KEY = "gen_ai.usage.completion_tokens"

_MILLION = Decimal(1_000_000)
_BUNDLED_FILE = "prices.json"

_PREFIX = re.compile(r"^(?:[a-z]{2}\.)?(?:anthropic|meta|mistral|cohere|amazon|ai21|google)\.")
_SUFFIX = re.compile(
    r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8}|-\d{4}|-\d{3}|-latest|-preview(?:-\d{2}-\d{2})?|-v\d+(?::\d+)?)$"
)
_MAX_CACHE = 4096


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens. ``cached_input_per_million`` None: cached tokens cost the input rate."""

    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal | None = None


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


_FIELD_ALIASES = {
    "input_per_million": ("input_per_million", "input"),
    "output_per_million": ("output_per_million", "output"),
    "cached_input_per_million": ("cached_input_per_million", "cached_input"),
}


def _parse_price(model: str, entry: object) -> ModelPrice:
    if isinstance(entry, ModelPrice):
        return entry
    if not isinstance(entry, Mapping):
        raise ValueError(f"models.{model}: expected a mapping of prices, got {type(entry).__name__}")
    known = {name for names in _FIELD_ALIASES.values() for name in names}
    unknown = sorted(str(k) for k in entry if k not in known)
    if unknown:
        raise ValueError(f"models.{model}: unknown price field(s) {unknown}; expected {sorted(known)}")
    values: dict[str, Decimal | None] = {}
    for field_name, names in _FIELD_ALIASES.items():
        raw = next((entry[n] for n in names if n in entry), None)
        if raw is None:
            if field_name != "cached_input_per_million":
                raise ValueError(f"models.{model}.{field_name}: required")
            values[field_name] = None
        else:
            values[field_name] = _decimal(raw, f"models.{model}.{field_name}")
    input_rate, output_rate = values["input_per_million"], values["output_per_million"]
    assert input_rate is not None and output_rate is not None
    return ModelPrice(input_rate, output_rate, values["cached_input_per_million"])


def _parse_document(doc: object, origin: str) -> tuple[dict[str, ModelPrice], dict[str, str], str | None]:
    """(prices, aliases, as_of) of a table document: ``{"models": {...}, "aliases": {...}}`` or flat."""
    if not isinstance(doc, Mapping):
        raise ValueError(f"{origin}: expected a mapping of model -> prices, got {type(doc).__name__}")
    as_of = doc.get("as_of")
    if "models" in doc and isinstance(doc["models"], Mapping):
        models, aliases = doc["models"], doc.get("aliases") or {}
    else:
        meta = {"as_of", "source", "currency", "unit", "aliases"}
        models = {k: v for k, v in doc.items() if k not in meta}
        aliases = doc.get("aliases") or {}
    if not isinstance(aliases, Mapping):
        raise ValueError(f"{origin}: aliases: expected a mapping of alias -> model")
    try:
        prices = {str(name).strip().lower(): _parse_price(str(name), entry) for name, entry in models.items()}
    except ValueError as exc:
        raise ValueError(f"{origin}: {exc}") from None
    return prices, {str(a).lower(): str(m).lower() for a, m in aliases.items()}, as_of and str(as_of)


def _load_file(path: str | os.PathLike[str]) -> object:
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


class PriceTable:
    """Model -> ``ModelPrice``, with the documented name normalisation and one warning per unknown model."""

    def __init__(
        self,
        prices: Mapping[str, ModelPrice],
        aliases: Mapping[str, str] | None = None,
        as_of: str | None = None,
    ) -> None:
        self._prices = {name.strip().lower(): price for name, price in prices.items()}
        self._aliases = {a.lower(): m.lower() for a, m in (aliases or {}).items()}
        self.as_of = as_of
        self._resolved: dict[str, ModelPrice | None] = {}

    # --------------------------------------------------------------------------------- construction

    @classmethod
    def bundled(cls) -> PriceTable:
        """The table shipped in this package (list prices as of ``as_of``)."""
        text = resources.files(__package__ or "processors.cost").joinpath(_BUNDLED_FILE).read_text("utf-8")
        prices, aliases, as_of = _parse_document(json.loads(text), _BUNDLED_FILE)
        return cls(prices, aliases, as_of)

    @classmethod
    def from_source(cls, source: str | os.PathLike[str] | Mapping[str, Any] | None) -> PriceTable:
        """The bundled table overridden per model by ``source`` (a JSON/YAML file path or a mapping).

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
        """A new table: this one with ``source``'s models replacing or adding entries."""
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
        prices, aliases, _ = _parse_document(doc, origin)
        merged_aliases = {a: m for a, m in self._aliases.items() if a not in prices}
        merged_aliases.update(aliases)
        return PriceTable({**self._prices, **prices}, merged_aliases, self.as_of)

    # --------------------------------------------------------------------------------------- lookup

    def models(self) -> list[str]:
        return sorted(self._prices)

    def _find(self, model: str) -> ModelPrice | None:
        cached = self._resolved.get(model, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        found = self._lookup(model)
        if len(self._resolved) > _MAX_CACHE:
            self._resolved.clear()
        self._resolved[model] = found
        return found

    def _lookup(self, model: str) -> ModelPrice | None:
        prices, aliases = self._prices, self._aliases
        name = model.strip().lower()
        if not name:
            return None
        candidates = [name]
        if "/" in name:
            candidates.append(name.rsplit("/", 1)[1])
        stripped = _PREFIX.sub("", candidates[-1])
        if stripped != candidates[-1]:
            candidates.append(stripped)
        for candidate in candidates:
            current = candidate
            for _ in range(4):
                price = prices.get(current) or prices.get(aliases.get(current, ""))
                if price is not None:
                    return price
                shorter = _SUFFIX.sub("", current)
                if shorter == current or not shorter:
                    break
                current = shorter
        return None

    def price(self, model: str) -> ModelPrice | None:
        """The price of ``model`` (see the module doc for the lookup); None, warned once, if unknown."""
        if not isinstance(model, str):
            return None
        found = self._find(model)
        if found is None:
            _warn_once(
                "model:" + model,
                "no price for model %r in the price table (as of %s): no cost computed; "
                "add it with %s or the cost processor's overrides",
                model,
                self.as_of,
                PRICING_ENV_VAR,
            )
        return found

    def llm_cost(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
    ) -> Decimal | None:
        """Exact USD cost; None for an unknown model or invalid token counts (logged once)."""
        if not (_is_count(input_tokens) and _is_count(output_tokens) and _is_count(cached_input_tokens)):
            counts = (input_tokens, output_tokens, cached_input_tokens)
            _warn_once("bad-tokens", "ignoring invalid token counts %r for model %r: no cost", counts, model)
            return None
        if cached_input_tokens > input_tokens:
            _warn_once(
                "cached>input",
                "cached input tokens (%d) exceed input tokens (%d) for model %r: no cost",
                cached_input_tokens,
                input_tokens,
                model,
            )
            return None
        price = self.price(model)
        if price is None:
            return None
        cached_rate = price.cached_input_per_million
        if cached_rate is None:
            cached_rate = price.input_per_million
        total = (
            (input_tokens - cached_input_tokens) * price.input_per_million
            + cached_input_tokens * cached_rate
            + output_tokens * price.output_per_million
        )
        return total / _MILLION


_MISSING = object()


def _is_count(value: object) -> bool:
    return type(value) is int and value >= 0


@functools.lru_cache(maxsize=1)
def default_price_table() -> PriceTable:
    """The bundled table merged with ``OTEL_METRICS_PRICING`` (read once, then cached)."""
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


def cost_attributes(attributes: Mapping[str, object], table: PriceTable) -> dict[str, float]:
    """``{"cost.usd": cost}`` for a span with a GenAI model and token counts but no ``cost.usd``.

    The response model wins over the request model (docs/conventions.md); if the response model is
    not in the table the request model is tried. Returns ``{}`` when there is nothing to price, the
    model is unknown (warned once) or the counts are invalid (negative, not integers).
    """
    get = attributes.get
    if COST_KEY in attributes:
        return {}
    response_model = get(RESPONSE_MODEL_KEY)
    request_model = get(REQUEST_MODEL_KEY)
    if not response_model and not request_model:
        return {}
    raw_input = get(INPUT_TOKENS_KEY)
    if raw_input is None:
        raw_input = get(_OLD_INPUT_TOKENS_KEY)
    raw_output = get(OUTPUT_TOKENS_KEY)
    if raw_output is None:
        raw_output = get(_OLD_OUTPUT_TOKENS_KEY)
    if raw_input is None and raw_output is None:
        return {}
    raw_cached = get(CACHED_INPUT_TOKENS_KEY)
    input_tokens = 0 if raw_input is None else _token_count(raw_input)
    output_tokens = 0 if raw_output is None else _token_count(raw_output)
    cached_tokens = 0 if raw_cached is None else _token_count(raw_cached)
    if input_tokens is None or output_tokens is None or cached_tokens is None:
        _warn_once(
            "bad-token-types",
            "ignoring non-integer token counts (input=%r, output=%r, cached=%r): no cost",
            raw_input,
            raw_output,
            raw_cached,
        )
        return {}
    model: str | None = None
    for candidate in (response_model, request_model):
        if isinstance(candidate, str) and candidate and table._find(candidate) is not None:
            model = candidate
            break
    if model is None:
        named = response_model if isinstance(response_model, str) and response_model else request_model
        if isinstance(named, str) and named:
            table.price(named)  # logs the unknown model once
        return {}
    cost = table.llm_cost(model, input_tokens, output_tokens, cached_tokens)
    if cost is None:
        return {}
    return {COST_KEY: float(cost)}
