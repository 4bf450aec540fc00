"""The bundled price catalog: providers, their models' match rules and dated prices (``prices.json``).

``prices.json`` is generated from the ``genai-prices`` package by ``processors.cost._generate`` (see there for
why and how to refresh it). The match rules are evaluated here as ``genai_prices.types`` evaluates them (the
clauses ``equals``/``starts_with``/``ends_with``/``contains``/``regex``/``or``/``and`` on the lower-cased
model name; a provider's ``fallback`` providers are searched one step deep), so a model resolves to the same
entry as with ``genai_prices.calc_price``; ``tests/processors/cost/test_cost_catalog.py`` checks that.

Provider: ``gen_ai.provider.name`` (or the older ``gen_ai.system``) as semantic-convention values
(``aws.bedrock``, ``azure.ai.openai``, ``gcp.vertex_ai``, ``x_ai`` …) or genai-prices ids. Without a provider,
or with one the catalog does not know, the provider is the first whose ``model_match`` accepts the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from importlib import resources
from typing import Any

__all__ = ["SEMCONV_PROVIDERS", "Catalog", "CatalogModel", "Constraint"]

_BUNDLED_FILE = "prices.json"
_MAX_CACHE = 4096

# GenAI semantic-convention provider names (and older gen_ai.system values) -> genai-prices provider id.
SEMCONV_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "az.ai.openai": "azure",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.inference": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "gemini": "google",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
    "cohere": "cohere",
}

Matcher = Callable[[str], bool]


def _matcher(clause: Any) -> Matcher:
    if not isinstance(clause, Mapping) or len(clause) != 1:
        raise ValueError(f"match clause: expected one key, got {clause!r}")
    ((kind, value),) = clause.items()
    if kind in ("or", "and"):
        parts = [_matcher(c) for c in value]
        combine = any if kind == "or" else all
        return lambda text: combine(part(text) for part in parts)
    needle = str(value).lower()
    if kind == "equals":
        return lambda text: text == needle
    if kind == "starts_with":
        return lambda text: text.startswith(needle)
    if kind == "ends_with":
        return lambda text: text.endswith(needle)
    if kind == "contains":
        return lambda text: needle in text
    if kind == "regex":
        pattern = re.compile(str(value))
        return lambda text: pattern.search(text) is not None
    raise ValueError(f"match clause: unknown kind {kind!r}")


@dataclass(frozen=True)
class Constraint:
    """When a dated price applies: from ``start_date`` on (UTC), or daily between two UTC times."""

    start_date: date | None = None
    start_time: time | None = None
    end_time: time | None = None

    def active(self, when: datetime) -> bool:
        when = when.astimezone(UTC) if when.tzinfo is not None else when
        if self.start_date is not None:
            return when.date() >= self.start_date
        if self.start_time is None or self.end_time is None:
            return True
        now = when.time()
        if self.end_time < self.start_time:
            return now >= self.start_time or now < self.end_time
        return self.start_time <= now < self.end_time


def _constraint(raw: Any) -> Constraint | None:
    if raw is None:
        return None
    if "start_date" in raw:
        return Constraint(start_date=date.fromisoformat(raw["start_date"]))
    start, end = time.fromisoformat(raw["start_time"]), time.fromisoformat(raw["end_time"])
    return Constraint(start_time=_utc(start), end_time=_utc(end))


def _utc(value: time) -> time:
    if value.tzinfo is None:
        return value
    return datetime.combine(date(1970, 1, 1), value).astimezone(UTC).time()


@dataclass(frozen=True)
class CatalogModel:
    """One model of one provider: its raw prices, oldest first, each with the constraint saying when it applies."""

    provider: str
    id: str
    matches: Matcher
    history: tuple[tuple[Constraint | None, Any], ...]
    context_window: int | None = None

    def raw_price(self, when: datetime | None) -> Any:
        """The price in force at ``when`` (now when None): the last active entry, else the first."""
        history = self.history
        if len(history) == 1:
            return history[0][1]
        moment = when or datetime.now(UTC)
        for constraint, price in reversed(history):
            if constraint is None or constraint.active(moment):
                return price
        return history[0][1]


@dataclass(frozen=True)
class _Provider:
    id: str
    name: str
    provider_match: Matcher | None
    model_match: Matcher | None
    fallback: tuple[str, ...]
    models: tuple[CatalogModel, ...]


class Catalog:
    """Providers and models of ``prices.json``; lookups are cached (bounded)."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.source = str(doc.get("source", ""))
        providers = []
        for raw in doc.get("providers", ()):
            pid = str(raw["id"])
            models = tuple(
                CatalogModel(
                    provider=pid,
                    id=str(m["id"]),
                    matches=_matcher(m["match"]),
                    history=tuple((_constraint(p["when"]), p["price"]) for p in m["prices"]),
                    context_window=m.get("context_window"),
                )
                for m in raw.get("models", ())
            )
            providers.append(
                _Provider(
                    id=pid,
                    name=str(raw.get("name", pid)),
                    provider_match=_matcher(raw["provider_match"]) if raw.get("provider_match") else None,
                    model_match=_matcher(raw["model_match"]) if raw.get("model_match") else None,
                    fallback=tuple(raw.get("fallback", ())),
                    models=models,
                )
            )
        self._providers = {p.id: p for p in providers}
        self._order: Sequence[_Provider] = providers
        self._found: dict[tuple[str | None, str], CatalogModel | None] = {}

    @classmethod
    def bundled(cls) -> Catalog:
        text = resources.files(__package__ or "processors.cost").joinpath(_BUNDLED_FILE).read_text("utf-8")
        return cls(json.loads(text))

    def providers(self) -> list[str]:
        return list(self._providers)

    def models(self, provider: str | None = None) -> list[CatalogModel]:
        chosen = self._order if provider is None else [p for p in self._order if p.id == self.provider_id(provider)]
        return [m for p in chosen for m in p.models]

    def provider_id(self, provider: str | None) -> str | None:
        """The catalog id of a provider name (semantic-convention value or genai-prices id); None if unknown."""
        if not provider:
            return None
        name = provider.strip().lower()
        if name in self._providers:
            return name
        mapped = SEMCONV_PROVIDERS.get(name)
        if mapped is not None:
            return mapped
        for p in self._order:
            if p.provider_match is not None and p.provider_match(name):
                return p.id
        return None

    def find(self, model: str, provider: str | None = None) -> CatalogModel | None:
        """The catalog entry for ``model`` (at ``provider`` when known), or None."""
        key = (provider, model)
        if key in self._found:
            return self._found[key]
        found = self._find(model.strip().lower(), self.provider_id(provider))
        if len(self._found) > _MAX_CACHE:
            self._found.clear()
        self._found[key] = found
        return found

    def _find(self, ref: str, provider_id: str | None) -> CatalogModel | None:
        if not ref:
            return None
        chosen = self._providers.get(provider_id) if provider_id else None
        if chosen is None:
            chosen = next((p for p in self._order if p.model_match is not None and p.model_match(ref)), None)
        found = self._in_provider(chosen, ref) if chosen is not None else None
        if found is None and chosen is None:
            found = self._unambiguous(ref)
        return found

    def _in_provider(self, provider: _Provider, ref: str) -> CatalogModel | None:
        found = next((m for m in provider.models if m.matches(ref)), None)
        if found is None:
            for fallback in provider.fallback:
                other = self._providers.get(fallback)
                found = next((m for m in other.models if m.matches(ref)), None) if other else None
                if found is not None:
                    break
        return found

    def _unambiguous(self, ref: str) -> CatalogModel | None:
        """With no provider to go by: the model if every provider that has it charges the same, else None.

        (genai-prices gives up here; a model only one provider lists, or that all list at one price, is not a
        guess.)
        """
        matches = [m for p in self._order for m in p.models if m.matches(ref)]
        if not matches or any(m.history != matches[0].history for m in matches[1:]):
            return None
        return matches[0]
