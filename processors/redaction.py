"""Redaction: mask secrets in attribute values before telemetry leaves the process or the collector.

Two built-in rule sets, both on by default, replace what they find with ``[REDACTED]``:

Sensitive keys (the whole value is masked, whatever its type; a string array keeps its length)
    The key is split into lower-case segments on ``.``, ``_``, ``-``, spaces and camelCase
    (``http.request.header.x-api-key`` -> ``http request header x api key``). It is sensitive when a
    segment is or ends with ``password``/``passwd``/``pwd``/``passphrase``/``secret``/``secrets``/
    ``authorization``/``cookie``/``cookies``/``credential``/``credentials``/``apikey``/``privatekey``,
    when adjacent segments spell ``api key``/``private key``/``access key``/``secret key``, or when the
    LAST segment is or ends with ``token`` (``access_token``, ``x-auth-token``, ``sessionToken``).
    Token *counts* are not secrets: ``gen_ai.usage.input_tokens``, ``gen_ai.request.max_tokens``,
    ``gen_ai.token.type`` (last segment ``tokens``/``type``) are never masked by key. The word
    ``session`` alone is not secret either (``session.id`` is a business attribute).

Sensitive patterns inside string values (only the secret part is replaced)
    ``Bearer <token>`` (8+ chars) -> ``Bearer [REDACTED]``; ``Basic <base64 user:pass>`` (only when it
    decodes to text with a ``:``); JWTs (``eyJ<header>.<payload>.<signature>``); API-key shapes:
    OpenAI/Anthropic ``sk-…``, Stripe ``sk_live_…``/``pk_…``/``rk_…``, GitHub ``ghp_…``/``github_pat_…``,
    GitLab ``glpat-…``, Slack ``xox?-…``, Google ``AIza…``, AWS access key ids ``AKIA…``/``ASIA…``;
    PEM private keys; passwords in URLs (``scheme://user:[REDACTED]@host``, the user is kept); ``password=…``,
    ``api_key: …``, ``token=…`` style pairs; payment card numbers: 13..19 digits (optionally grouped by
    single spaces or dashes) starting with 2-6 and passing the Luhn check, bounded by non-digits, and not inside a
    canonical UUID —
    replaced whole, the last four digits are NOT kept.

Pure face: ``redact_attributes(attributes) -> dict`` with the built-in rules. Short string values'
verdicts are memoised (bounded), so repeated values cost a dict lookup; strings over 256 characters
are scanned every time (after a cheap substring pre-check).

SDK face: ``processors.sdk.EnrichingSpanProcessor(inner, price_table=..., redact=True)`` redacts span
and span-event attributes of ended spans.

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

Spans: span attributes and span-event attributes (counts cover span attributes only). Logs: record
attributes and a string body. Metrics: data point attributes.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from processors._attributes import any_value_to_python, python_to_any_value
from processors.pipeline import Consumer, CreateSettings, Processor, ProcessorFactory, Request, Signal

__all__ = [
    "REDACTED",
    "RedactionConfig",
    "RedactionRules",
    "factories",
    "is_sensitive_key",
    "redact_attributes",
    "redact_text",
]

REDACTED = "[REDACTED]"

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
)
_SECRET_PAIRS = frozenset({("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key")})
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_SEGMENTS = re.compile(r"[a-z0-9]+")


def _key_segments(key: str) -> list[str]:
    return _SEGMENTS.findall(_CAMEL.sub(r"\1_\2", key).lower())


def _builtin_key_is_sensitive(key: str) -> bool:
    segments = _key_segments(key)
    if not segments:
        return False
    if segments[-1].endswith("token"):
        return True
    for i, segment in enumerate(segments):
        if segment.endswith(_SECRET_WORD_ENDINGS):
            return True
        if i and (segments[i - 1], segment) in _SECRET_PAIRS:
            return True
    return False


# ---------------------------------------------------------------------------------- value patterns

_VALUE_PATTERN = re.compile(
    r"(?P<pem>-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z))"
    r"|(?P<bearer>\b(?i:bearer)\s+)(?P<bearer_val>[A-Za-z0-9\-._~+/]{8,}=*)"
    r"|(?P<basic>\b(?i:basic)\s+)(?P<basic_val>[A-Za-z0-9+/]{4,}={0,2})"
    r"|(?P<jwt>\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*)"
    r"|(?P<apikey>\b(?:sk-[A-Za-z0-9_\-]{16,}|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_\-]{20,}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35}|(?:AKIA|ASIA)[0-9A-Z]{16}))"
    r"|(?P<url>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]*:)(?P<url_val>[^\s/@]+)(?=@)"
    r"|(?P<pair>\b(?i:password|passwd|pwd|secret|client[_-]?secret|api[_-]?key|access[_-]?token"
    r"|refresh[_-]?token|auth[_-]?token|token)[\"']?\s*[=:]\s*[\"']?)(?P<pair_val>[^\s&,;\"']+)"
    r"|(?P<card>(?<!\d)\d(?:[ \-]?\d){12,}(?!\d))",
    re.ASCII,  # ASCII digits and case folding only, so the cheap pre-check below cannot miss a match
)
# Every alternative above implies one of these substrings (in the lower-cased text) or a run of 13
# digits: checking them with C substring search is several times faster than the regex on clean text.
_SIGNALS = (
    "private",
    "bearer",
    "basic",
    "eyj",
    "sk-",
    "sk_",
    "pk_",
    "rk_",
    "gh",
    "github_pat_",
    "glpat-",
    "xox",
    "aiza",
    "akia",
    "asia",
    "://",
    "pass",
    "pwd",
    "secret",
    "key",
    "token",
)
_CARD_HINT = re.compile(r"\d(?:[ \-]?\d){12}", re.ASCII)
_CARD_GROUPS = re.compile(r"\d+")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn_ok(digits)


def _redact_card_run(run: str) -> str:
    """Mask the card numbers in a run of digit groups: the whole run, else any group-aligned window."""
    digits = run.replace(" ", "").replace("-", "")
    if _is_card(digits):
        return REDACTED
    groups = [(m.start(), m.end()) for m in _CARD_GROUPS.finditer(run)]
    if len(groups) < 2:
        return run
    out: list[str] = []
    last = 0
    i = 0
    while i < len(groups):
        found = False
        for j in range(len(groups) - 1, i - 1, -1):  # longest window first
            start, end = groups[i][0], groups[j][1]
            window = run[start:end].replace(" ", "").replace("-", "")
            if len(window) < 13:
                break
            if _is_card(window):
                out.append(run[last:start])
                out.append(REDACTED)
                last = end
                i = j + 1
                found = True
                break
        if not found:
            i += 1
    out.append(run[last:])
    return "".join(out)


# A canonical UUID is an identifier, never a payment card, yet one in a few hundred random UUID4s holds a
# Luhn-valid run of 13+ digits across its dash-separated groups (correlation ids are UUIDs).
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}", re.ASCII)


def _inside_uuid(match: re.Match[str]) -> bool:
    start, end = match.span()
    text = match.string
    for uuid in _UUID.finditer(text, max(0, start - 36), min(len(text), end + 36)):
        if uuid.start() <= start and end <= uuid.end():
            return True
    return False


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "card":
        if _inside_uuid(match):
            return match.group()
        return _redact_card_run(match.group())
    if kind == "bearer_val":
        return match.group("bearer") + REDACTED
    if kind == "basic_val":
        value = match.group("basic_val")
        try:
            decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        except (binascii.Error, ValueError):
            return match.group()
        if b":" not in decoded:
            return match.group()
        return match.group("basic") + REDACTED
    if kind == "url_val":
        return match.group("url") + REDACTED
    if kind == "pair_val":
        return match.group("pair") + REDACTED
    return REDACTED


# Attribute values repeat (routes, methods, model names, tenants): remembering the verdict for short
# strings turns the regex scan (microseconds) into a dict lookup on the per-span hot path.
_TEXT_CACHE: dict[str, str] = {}
_TEXT_CACHE_MAX_ENTRIES = 8192
_TEXT_CACHE_MAX_LENGTH = 256
# No value pattern matches text shorter than this (the shortest match is a pair such as "pwd=x").
_MIN_SCAN_LENGTH = 5


def _might_match(text: str) -> bool:
    lowered = text.lower()
    for signal in _SIGNALS:
        if signal in lowered:
            return True
    return _CARD_HINT.search(text) is not None


def _scan(text: str) -> str:
    if not _might_match(text) or _VALUE_PATTERN.search(text) is None:
        return text
    result = _VALUE_PATTERN.sub(_replace, text)
    return text if result == text else result


def redact_text(text: str) -> str:
    """``text`` with the built-in sensitive patterns replaced (the same object when nothing matched)."""
    if len(text) < _MIN_SCAN_LENGTH:
        return text
    if len(text) > _TEXT_CACHE_MAX_LENGTH:
        return _scan(text)
    cached = _TEXT_CACHE.get(text)
    if cached is None:
        cached = _scan(text)
        if len(_TEXT_CACHE) >= _TEXT_CACHE_MAX_ENTRIES:
            _TEXT_CACHE.clear()
        _TEXT_CACHE[text] = cached
    return text if cached == text else cached


# ------------------------------------------------------------------------------------------- rules


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

    def redact_value(self, key: str, value: object) -> object:
        if value is None or key in self.ignored_keys:
            return value
        if self.key_is_sensitive(key):
            masked = _masked(value)
            return value if masked == value else masked
        if isinstance(value, str):
            return self.redact_string(value)
        if isinstance(value, list | tuple):
            if value and all(isinstance(v, str) for v in value):
                items = [self.redact_string(v) for v in value]
                if any(new is not old for new, old in zip(items, value, strict=True)):
                    return tuple(items) if isinstance(value, tuple) else items
            elif self._all_types and value:
                others = [self._redact_other(v) for v in value]
                if any(new is not old for new, old in zip(others, value, strict=True)):
                    return tuple(others) if isinstance(value, tuple) else others
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


class _RedactionProcessor(Processor):
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

    def _redact_any_value(self, key: str, value: AnyValue) -> bool:
        kind = value.WhichOneof("value")
        if kind == "string_value":  # fast path: no python conversion
            old = value.string_value
            new = self._rules.redact_value(key, old)
            if new is old:
                return False
            python_to_any_value(new, value)
            return True
        if kind is None:
            return False
        old_py = any_value_to_python(value)
        new_py = self._rules.redact_value(key, old_py)
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

    def _process(self, request: Request) -> None:
        if isinstance(request, ExportTraceServiceRequest):
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self._add_summary(span.attributes, self._redact_kvs(span.attributes))
                        for event in span.events:
                            self._redact_kvs(event.attributes)
        elif isinstance(request, ExportLogsServiceRequest):
            for rl in request.resource_logs:
                for sl in rl.scope_logs:
                    for record in sl.log_records:
                        self._add_summary(record.attributes, self._redact_kvs(record.attributes))
                        if record.body.WhichOneof("value") == "string_value":
                            body = record.body.string_value
                            redacted = self._rules.redact_string(body)
                            if redacted is not body:
                                record.body.string_value = redacted
        elif isinstance(request, ExportMetricsServiceRequest):
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        kind = metric.WhichOneof("data")
                        if kind is None:
                            continue
                        points: Sequence[Any] = getattr(metric, kind).data_points
                        for point in points:
                            self._add_summary(point.attributes, self._redact_kvs(point.attributes))

    async def consume(self, signal: Signal, request: Request) -> None:
        self._process(request)
        await self.next_consumer.consume(signal, request)


def _create(settings: CreateSettings, config: Any, next_consumer: Consumer) -> Processor:
    return _RedactionProcessor(settings, config, next_consumer)


factories: tuple[ProcessorFactory, ...] = (
    ProcessorFactory(type="redaction", config_type=RedactionConfig, create=_create),
)
