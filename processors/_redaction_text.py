"""Secret patterns inside free text (the value face of ``processors.redaction``; see its module doc).

``redact_text`` replaces only the secret part of a string (``Bearer [REDACTED]``, ``password=[REDACTED]``) and
returns the same object when nothing matched, so callers test identity to skip a copy.
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["REDACTED", "redact_text"]

REDACTED = "[REDACTED]"

# ---------------------------------------------------------------------------------- value patterns

_VALUE_PATTERN = re.compile(
    r"(?P<pem>-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z))"
    # An Authorization header written out: whatever its scheme (Bearer, Token, Digest, none), the rest of the line
    # goes (Digest credentials hold spaces and commas).
    r"|(?P<auth>\b(?i:(?:proxy[-_])?authorization)[\"']?\s*[=:]\s*[\"']?(?:[A-Za-z][A-Za-z0-9\-]*\s+)?)"
    r"(?P<auth_val>[^\r\n&\"']+)"
    r"|(?P<bearer>\b(?i:bearer)\s+)(?P<bearer_val>[A-Za-z0-9\-._~+/]{8,}=*)"
    r"|(?P<basic>\b(?i:basic)\s+)(?P<basic_val>[A-Za-z0-9+/]{4,}={0,2})"
    r"|(?P<jwt>\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*)"
    r"|(?P<apikey>\b(?:sk-[A-Za-z0-9_\-]{16,}|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_\-]{20,}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35}|(?:AKIA|ASIA)[0-9A-Z]{16}))"
    r"|(?P<url>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]*:)(?P<url_val>[^\s/@]+)(?=@)"
    r"|(?P<pair>\b(?i:pass[_\-.]?w(?:or)?d|pwd|secret|client[_-]?secret|api[_-]?key|access[_-]?token"
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
    "authorization",
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
    if kind == "auth_val":
        return match.group("auth") + REDACTED
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
