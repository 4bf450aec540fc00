"""Redaction: mask secrets in attribute values before telemetry leaves the process or the collector.

Two built-in rule sets, both on by default, replace what they find with ``[REDACTED]``:

Sensitive keys (the whole value is masked, whatever its type; a string array keeps its length)
    The key is normalised: split into lower-case segments on ``.``, ``_``, ``-``, spaces and camelCase
    (``http.request.header.x-api-key`` -> ``http request header x api key``), then read as one word. It is
    sensitive when the segments up to any segment's end spell a name ending in ``password``/``passwd``/
    ``pwd``/``passphrase``/``secret``/``secrets``/``authorization``/``cookie``/``cookies``/``credential``/
    ``credentials``/``apikey``/``privatekey``/``accesskey``/``secretkey`` (so ``passWord``, ``pass_word``,
    ``db.password`` and ``api.key`` all are; ``auth.passwordless`` is not), or when the whole name ends with
    ``token`` (``access_token``, ``x-auth-token``, ``sessionToken``).
    Token *counts* are not secrets: ``gen_ai.usage.input_tokens``, ``gen_ai.request.max_tokens``,
    ``gen_ai.token.type`` (last segment ``tokens``/``type``) are never masked by key. The word
    ``session`` alone is not secret either (``session.id`` is a business attribute).

Sensitive patterns inside string values (only the secret part is replaced)
    ``Bearer <token>`` (8+ chars) -> ``Bearer [REDACTED]``; ``Basic <base64 user:pass>`` (only when it
    decodes to text with a ``:``); JWTs (``eyJ<header>.<payload>.<signature>``); API-key shapes:
    OpenAI/Anthropic ``sk-…``, Stripe ``sk_live_…``/``pk_…``/``rk_…``, GitHub ``ghp_…``/``github_pat_…``,
    GitLab ``glpat-…``, Slack ``xox?-…``, Google ``AIza…``, AWS access key ids ``AKIA…``/``ASIA…``;
    PEM private keys; passwords in URLs (``scheme://user:[REDACTED]@host``, the user is kept); ``password=…``,
    ``api_key: …``, ``token=…`` style pairs; ``Authorization: <scheme> <credential>`` (any scheme: ``Token``,
    ``Bearer``, none); payment card numbers: 13..19 digits (optionally grouped by
    single spaces or dashes) starting with 2-6 and passing the Luhn check, bounded by non-digits, and not inside a
    canonical UUID —
    replaced whole, the last four digits are NOT kept.

Nested values are walked: a map is redacted by its own keys, an array item by item (a sensitive key masks
its whole value); beyond ``MAX_DEPTH`` levels a value is masked whole rather than walked.

Pure face: ``redact_attributes(attributes) -> dict`` with the built-in rules. Short string values'
verdicts are memoised (bounded), so repeated values cost a dict lookup; strings over 256 characters
are scanned every time (after a cheap substring pre-check).

SDK face: ``processors.sdk.EnrichingSpanProcessor(inner, price_table=..., redact=True)`` redacts ended
spans: span, event and link attributes, the status description and the resource attributes.

Collector face: processor type ``redaction`` (traces, metrics, logs), keys of the upstream contrib
``redaction`` processor where they make sense, plus our built-in rules:

``allow_all_keys`` (default: true unless ``allowed_keys`` is set)
    keep every attribute key. Upstream defaults to false (fail closed); here enabling the processor
    means "mask secrets", so an empty ``allowed_keys`` keeps everything.
``allowed_keys`` (default ``[]``)
    with ``allow_all_keys: false``, attributes not listed (nor ignored) are removed.
``ignored_keys`` (default ``[]``)
    attributes passed through untouched.
``blocked_values`` (default ``[]``)
    regexes; matching parts of string values are replaced with ``[REDACTED]`` (upstream masks with
    ``****``).
``blocked_key_patterns`` (default ``[]``)
    regexes; the whole value of a matching key is masked.
``allowed_values`` (default ``[]``)
    regexes; a string value containing a match is never value-masked (sensitive keys still are).
``redact_all_types`` (default ``false``)
    also mask non-string values whose text matches a pattern.
``summary`` (default ``silent``)
    ``info`` adds ``redaction.redacted.count``/``redaction.masked.count``/``redaction.ignored.count``,
    ``debug`` also ``redaction.redacted.keys``/``redaction.masked.keys`` (comma-joined, sorted). Zero
    counts are not added.
``builtin_patterns`` (default ``true``)
    our sensitive-key and value rules above; false leaves only the upstream-style options.

Every attribute-bearing field: resource and scope attributes of all three signals; span, event and link
attributes and status messages; log record attributes and bodies (a string, map or array body); metric data
point and exemplar attributes. Summary counts cover span, log record and data point attributes only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from processors._attributes import python_to_any_value
from processors._redaction_text import _MIN_SCAN_LENGTH, _TEXT_CACHE, REDACTED, redact_text
from processors.pdata import SIGNALS
from processors.pipeline import Consumer, CreateSettings, ProcessorFactory, Request, Signal, SyncProcessor

__all__ = [
    "REDACTED",
    "RedactionConfig",
    "RedactionRules",
    "factories",
    "is_sensitive_key",
    "redact_attributes",
    "redact_text",
]

# ------------------------------------------------------------------------------------ sensitive keys

_SECRET_WORD_ENDINGS = (
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "secrets",
    "authorization",
    "cookie",
    "cookies",
    "credential",
    "credentials",
    "apikey",
    "privatekey",
    "accesskey",
    "secretkey",
)
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_SEGMENTS = re.compile(r"[a-z0-9]+")


def _key_segments(key: str) -> list[str]:
    return _SEGMENTS.findall(_CAMEL.sub(r"\1_\2", key).lower())


def _builtin_key_is_sensitive(key: str) -> bool:
    # Segments are joined as they are read, so a word split by case or separators (passWord, pass_word,
    # api.key) still ends a prefix of the normalised name. A word counts only where a segment ends:
    # auth.passwordless is a flag, not a password.
    joined = ""
    for segment in _key_segments(key):
        joined += segment
        if joined.endswith(_SECRET_WORD_ENDINGS):
            return True
    return joined.endswith("token")


# ------------------------------------------------------------------------------------------- rules


# Deeper nesting than this is masked whole rather than walked (protobuf's own decoder stops at 100 levels).
MAX_DEPTH = 32


def _masked(value: object) -> object:
    if isinstance(value, tuple):  # the SDK stores sequences as tuples; keep the container type
        return (REDACTED,) * len(value)
    if isinstance(value, list):
        return [REDACTED] * len(value)
    return REDACTED


class RedactionRules:
    """A compiled rule set; ``redact_value`` returns the value itself (``is``) when nothing changes."""

    def __init__(
        self,
        *,
        builtin: bool = True,
        blocked_values: Iterable[str] = (),
        blocked_key_patterns: Iterable[str] = (),
        allowed_values: Iterable[str] = (),
        ignored_keys: Iterable[str] = (),
        redact_all_types: bool = False,
    ) -> None:
        self._builtin = builtin
        self._blocked = [re.compile(p) for p in blocked_values]
        self._blocked_keys = [re.compile(p) for p in blocked_key_patterns]
        self._allowed = [re.compile(p) for p in allowed_values]
        self.ignored_keys = frozenset(ignored_keys)
        self._all_types = redact_all_types
        self._key_cache: dict[str, bool] = {}
        # Built-in rules only: redact_changes can answer from its two caches without calling redact_value.
        self._plain = builtin and not self._allowed and not self._blocked

    def key_is_sensitive(self, key: str) -> bool:
        cached = self._key_cache.get(key)
        if cached is None:
            cached = (self._builtin and _builtin_key_is_sensitive(key)) or any(
                p.search(key) for p in self._blocked_keys
            )
            if len(self._key_cache) > 8192:  # attribute keys are few; a flood of unique keys must not grow
                self._key_cache.clear()
            self._key_cache[key] = cached
        return cached

    def redact_string(self, text: str) -> str:
        if self._allowed and any(p.search(text) for p in self._allowed):
            return text
        result = redact_text(text) if self._builtin else text
        for pattern in self._blocked:
            result = pattern.sub(REDACTED, result)
        return text if result == text else result

    def redact_value(self, key: str, value: object, depth: int = 0) -> object:
        """``value`` with secrets masked: nested maps are walked by their own keys, arrays item by item."""
        if value is None or key in self.ignored_keys:
            return value
        if self.key_is_sensitive(key) or depth > MAX_DEPTH:  # too deep to walk: fail closed
            masked = _masked(value)
            return value if masked == value else masked
        if isinstance(value, str):
            return self.redact_string(value)
        if isinstance(value, list | tuple):
            items = [self.redact_value(key, v, depth + 1) for v in value]
            if any(new is not old for new, old in zip(items, value, strict=True)):
                return tuple(items) if isinstance(value, tuple) else items
            return value
        if isinstance(value, Mapping):
            changed = {k: self.redact_value(str(k), v, depth + 1) for k, v in value.items()}
            if any(changed[k] is not v for k, v in value.items()):
                return changed
            return value
        if self._all_types:
            return self._redact_other(value)
        return value

    def _redact_other(self, value: object) -> object:
        if isinstance(value, str):
            return self.redact_string(value)
        text = str(value)
        return REDACTED if self.redact_string(text) != text else value

    def redact_changes(self, attributes: Mapping[str, object]) -> dict[str, object] | None:
        """The redacted attributes, or None when nothing would change (no copy on the fast path)."""
        changed: dict[str, object] | None = None
        if self._plain:  # the common case, inlined: dict lookups only when the caches are warm
            key_cache, text_cache = self._key_cache, _TEXT_CACHE
            numbers_pass = not self._all_types
            for key, value in attributes.items():
                sensitive = key_cache.get(key)
                if sensitive is None:
                    sensitive = self.key_is_sensitive(key)
                if not sensitive:
                    kind = type(value)
                    if kind is str:
                        # Under _MIN_SCAN_LENGTH characters nothing can match (redact_text returns it as is).
                        if len(value) < _MIN_SCAN_LENGTH:  # type: ignore[arg-type]
                            continue
                        cached = text_cache.get(value)  # type: ignore[call-overload]
                        if cached is not None and cached == value:
                            continue
                    elif numbers_pass and (kind is int or kind is float or kind is bool):
                        continue
                new = self.redact_value(key, value)
                if new is not value:
                    if changed is None:
                        changed = {}
                    changed[key] = new
        else:
            for key, value in attributes.items():
                new = self.redact_value(key, value)
                if new is not value:
                    if changed is None:
                        changed = {}
                    changed[key] = new
        if changed is None:
            return None
        return {key: changed.get(key, value) for key, value in attributes.items()}


_DEFAULT_RULES = RedactionRules()


def is_sensitive_key(key: str) -> bool:
    """Whether the built-in rules mask the whole value of attribute ``key``."""
    return _DEFAULT_RULES.key_is_sensitive(key)


def redact_attributes(attributes: Mapping[str, object]) -> dict[str, object]:
    """A copy of ``attributes`` with secrets masked by the built-in rules (see the module doc)."""
    changed = _DEFAULT_RULES.redact_changes(attributes)
    return dict(attributes) if changed is None else changed


def default_rules() -> RedactionRules:
    return _DEFAULT_RULES


# ------------------------------------------------------------------------------------ collector face

DEFAULT_SUMMARY: Literal["silent", "info", "debug"] = "silent"
_SUMMARY_LEVELS = ("silent", "info", "debug")


@dataclass
class RedactionConfig:
    # Keep every attribute key (default: true unless allowed_keys is set; upstream defaults to false).
    allow_all_keys: bool | None = None
    # With allow_all_keys false: attributes neither listed here nor ignored are removed.
    allowed_keys: list[str] = field(default_factory=list)
    # Attributes passed through untouched.
    ignored_keys: list[str] = field(default_factory=list)
    # Regexes; the matching parts of string values are replaced with [REDACTED].
    blocked_values: list[str] = field(default_factory=list)
    # Regexes; the whole value of an attribute whose key matches is masked.
    blocked_key_patterns: list[str] = field(default_factory=list)
    # Regexes; a string value containing a match is never value-masked (sensitive keys still are).
    allowed_values: list[str] = field(default_factory=list)
    # Also mask non-string values whose text matches a pattern.
    redact_all_types: bool = False
    # info: add redaction.redacted.count / masked.count / ignored.count to each item; debug: also the keys.
    summary: Literal["silent", "info", "debug"] = DEFAULT_SUMMARY
    # Our built-in sensitive-key and value rules (tokens, keys, cards, emails...); false: only the options above.
    builtin_patterns: bool = True

    def validate(self) -> list[str]:
        errors = []
        for name in ("blocked_values", "blocked_key_patterns", "allowed_values"):
            for i, pattern in enumerate(getattr(self, name)):
                try:
                    re.compile(pattern)
                except (re.error, TypeError) as exc:
                    errors.append(f"{name}[{i}]: invalid regular expression {pattern!r}: {exc}")
        if self.summary not in _SUMMARY_LEVELS:
            errors.append(f"summary: expected one of {', '.join(_SUMMARY_LEVELS)}, got {self.summary!r}")
        if self.allow_all_keys is False and not self.allowed_keys:
            errors.append("allowed_keys: empty with allow_all_keys false would remove every attribute")
        return errors


@dataclass
class _Counts:
    redacted: list[str] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)
    ignored: int = 0


class _RedactionProcessor(SyncProcessor):
    def __init__(self, settings: CreateSettings, config: RedactionConfig, next_consumer: Consumer) -> None:
        super().__init__(settings, next_consumer)
        self._rules = RedactionRules(
            builtin=config.builtin_patterns,
            blocked_values=config.blocked_values,
            blocked_key_patterns=config.blocked_key_patterns,
            allowed_values=config.allowed_values,
            ignored_keys=config.ignored_keys,
            redact_all_types=config.redact_all_types,
        )
        allow_all = config.allow_all_keys if config.allow_all_keys is not None else not config.allowed_keys
        self._allowed_keys = None if allow_all else frozenset(config.allowed_keys) | self._rules.ignored_keys
        self._summary = config.summary

    def _redact_kvs(self, attributes: RepeatedCompositeFieldContainer[KeyValue]) -> _Counts:
        counts = _Counts()
        rules = self._rules
        removed: list[int] = []
        for i, kv in enumerate(attributes):
            key = kv.key
            if key in rules.ignored_keys:
                counts.ignored += 1
                continue
            if self._allowed_keys is not None and key not in self._allowed_keys:
                removed.append(i)
                counts.redacted.append(key)
                continue
            if self._redact_any_value(key, kv.value):
                counts.masked.append(key)
        for i in reversed(removed):
            del attributes[i]
        return counts

    def _redact_any_value(self, key: str, value: AnyValue, depth: int = 0) -> bool:
        """Mask secrets in ``value`` in place, walking nested maps and arrays; whether anything changed."""
        rules = self._rules
        kind = value.WhichOneof("value")
        if kind is None or key in rules.ignored_keys:
            return False
        if kind == "string_value":  # the common case: no python conversion
            old = value.string_value
            new = rules.redact_value(key, old)
            if new is old:
                return False
            value.string_value = str(new)
            return True
        if rules.key_is_sensitive(key) or depth >= MAX_DEPTH:  # too deep to walk: fail closed
            return _mask_any_value(value)
        if kind == "kvlist_value":
            changed = False
            for kv in value.kvlist_value.values:
                changed |= self._redact_any_value(kv.key, kv.value, depth + 1)
            return changed
        if kind == "array_value":
            changed = False
            for item in value.array_value.values:
                changed |= self._redact_any_value(key, item, depth + 1)
            return changed
        old_py = getattr(value, kind)
        new_py = rules.redact_value(key, old_py)
        if new_py is old_py:
            return False
        python_to_any_value(new_py, value)
        return True

    def _add_summary(self, attributes: RepeatedCompositeFieldContainer[KeyValue], counts: _Counts) -> None:
        if self._summary == "silent":
            return
        pairs: list[tuple[str, object]] = []
        if self._summary == "debug":
            if counts.redacted:
                pairs.append(("redaction.redacted.keys", ",".join(sorted(counts.redacted))))
            if counts.masked:
                pairs.append(("redaction.masked.keys", ",".join(sorted(counts.masked))))
        if counts.redacted:
            pairs.append(("redaction.redacted.count", len(counts.redacted)))
        if counts.masked:
            pairs.append(("redaction.masked.count", len(counts.masked)))
        if counts.ignored:
            pairs.append(("redaction.ignored.count", counts.ignored))
        for key, val in pairs:
            python_to_any_value(val, attributes.add(key=key).value)

    def _process(self, signal: Signal, request: Request) -> None:
        spec = SIGNALS[signal]
        redact_item = {
            Signal.TRACES: self._redact_span,
            Signal.LOGS: self._redact_log,
            Signal.METRICS: self._redact_metric,
        }[signal]
        for entry in getattr(request, spec.resource_field):
            self._redact_kvs(entry.resource.attributes)
            for scope_entry in getattr(entry, spec.scope_field):
                self._redact_kvs(scope_entry.scope.attributes)
                for item in getattr(scope_entry, spec.item_field):
                    redact_item(item)

    def _redact_log(self, record: LogRecord) -> None:
        self._add_summary(record.attributes, self._redact_kvs(record.attributes))
        self._redact_any_value("", record.body)

    def _redact_span(self, span: Span) -> None:
        self._add_summary(span.attributes, self._redact_kvs(span.attributes))
        for event in span.events:
            self._redact_kvs(event.attributes)
        for link in span.links:
            self._redact_kvs(link.attributes)
        if span.status.message:
            message = self._rules.redact_string(span.status.message)
            if message is not span.status.message:
                span.status.message = message

    def _redact_metric(self, metric: Metric) -> None:
        kind = metric.WhichOneof("data")
        if kind is None:
            return
        points: Sequence[Any] = getattr(metric, kind).data_points
        for point in points:
            self._add_summary(point.attributes, self._redact_kvs(point.attributes))
            for exemplar in getattr(point, "exemplars", ()):
                self._redact_kvs(exemplar.filtered_attributes)

    def process(self, signal: Signal, request: Request) -> bool:
        self._process(signal, request)
        return True


def _mask_any_value(value: AnyValue) -> bool:
    """Mask the whole value (an array keeps its length); False when it was masked already."""
    if value.WhichOneof("value") == "array_value":
        items = value.array_value.values
        if all(item.string_value == REDACTED for item in items):
            return False
        count = len(items)
        del items[:]
        for _ in range(count):
            items.add(string_value=REDACTED)
        return True
    if value.string_value == REDACTED:
        return False
    value.string_value = REDACTED  # setting one member of the oneof clears the others
    return True


factories: tuple[ProcessorFactory[RedactionConfig], ...] = (
    ProcessorFactory(type="redaction", config_type=RedactionConfig, create=_RedactionProcessor),
)
