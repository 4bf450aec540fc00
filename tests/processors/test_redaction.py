"""redaction: sensitive keys, value patterns (property-tested), and the collector face's upstream keys."""

from __future__ import annotations

import asyncio
import base64
import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.internal.charmap import CategoryName
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors._attributes import attributes_to_dict, set_attribute
from processors.pipeline import ComponentID, CreateSettings, Request, Signal
from processors.redaction import MAX_DEPTH as REDACTION_MAX_DEPTH
from processors.redaction import (
    REDACTED,
    RedactionConfig,
    factories,
    is_sensitive_key,
    redact_attributes,
    redact_text,
)

TOKEN_COUNT_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.request.max_tokens",
    "gen_ai.token.type",
    "llm.usage.total_tokens",
    "gen_ai.client.token.usage",
)


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "db.password",
        "user_passwd",
        "client_secret",
        "apiKey",
        "api_key",
        "x-api-key",
        "http.request.header.x-api-key",
        "http.request.header.authorization",
        "http.request.header.cookie",
        "http.response.header.set-cookie",
        "private_key",
        "aws_secret_access_key",
        "access_token",
        "refreshToken",
        "token",
        "http.request.header.x-auth-token",
        "credentials",
        "db.credential",
    ],
)
def test_sensitive_keys(key: str) -> None:
    assert is_sensitive_key(key)
    assert redact_attributes({key: "hunter2"}) == {key: REDACTED}


@pytest.mark.parametrize("key", [*TOKEN_COUNT_KEYS, "session.id", "user.id", "http.route", "auth.token.expiry"])
def test_keys_that_are_not_secrets(key: str) -> None:
    assert not is_sensitive_key(key)


def test_token_counts_and_ordinary_attributes_survive_unchanged() -> None:
    attrs = {key: 1234 for key in TOKEN_COUNT_KEYS} | {
        "gen_ai.token.type": "input",
        "http.route": "/v1/chat",
        "gen_ai.request.model": "gpt-4o",
        "cost.usd": 0.0042,
        "http.request.header.accept": ["application/json"],
    }
    assert redact_attributes(attrs) == attrs


@given(st.sampled_from(TOKEN_COUNT_KEYS), st.integers(min_value=0, max_value=10**12))
def test_token_counts_always_survive(key: str, count: int) -> None:
    assert redact_attributes({key: count}) == {key: count}


def test_sensitive_values_of_any_type_are_masked_keeping_array_length() -> None:
    out = redact_attributes({"http.request.header.authorization": ["Bearer a", "b"], "password": 1234})
    assert out == {"http.request.header.authorization": [REDACTED, REDACTED], "password": REDACTED}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-123_456", "Authorization: Bearer [REDACTED]"),
        ("Basic " + base64.b64encode(b"alice:s3cret").decode(), "Basic [REDACTED]"),
        ("basic functionality works", "basic functionality works"),
        ("key=sk-proj-AbCdEfGhIjKlMnOpQrSt1234 rest", "key=[REDACTED] rest"),
        ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "[REDACTED]"),
        ("aws AKIAIOSFODNN7EXAMPLE here", "aws [REDACTED] here"),
        ("ghp_" + "a" * 36, "[REDACTED]"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig-nature_x", "jwt [REDACTED]"),
        ("postgresql://bob:hunter2@db.local:5432/app", "postgresql://bob:[REDACTED]@db.local:5432/app"),
        ("GET /x?api_key=abc123&page=2", "GET /x?api_key=[REDACTED]&page=2"),
        ('{"password": "hunter2", "user": "bob"}', '{"password": "[REDACTED]", "user": "bob"}'),
        ("paid with 4111 1111 1111 1111 today", "paid with [REDACTED] today"),
        ("card 5555-5555-5555-4444.", "card [REDACTED]."),
        ("amex 378282246310005", "amex [REDACTED]"),
        ("ref 12 4111 1111 1111 1111", "ref 12 [REDACTED]"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "[REDACTED]"),
        # not secrets
        (
            "input_tokens=512 output_tokens=64 max_tokens=1024",
            "input_tokens=512 output_tokens=64 max_tokens=1024",
        ),
        ("ts 1700000000000 order 4111111111111112", "ts 1700000000000 order 4111111111111112"),
        ("https://example.com/a/b@c", "https://example.com/a/b@c"),
        ("gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
    ],
)
def test_value_patterns(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_attributes({"message": text}) == {"message": expected}


def test_unchanged_text_is_the_same_object() -> None:
    text = "nothing to see here at all"
    assert redact_text(text) is text


def _luhn_complete(body: str) -> str:
    for check in "0123456789":
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    length = draw(st.integers(min_value=13, max_value=19))
    first = draw(st.sampled_from("23456"))
    body = first + draw(st.text(alphabet="0123456789", min_size=length - 2, max_size=length - 2))
    return _luhn_complete(body)


def _formatted(digits: str, sep: str) -> str:
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4)) if sep else digits


_DIGITS: tuple[CategoryName, ...] = ("Nd",)
_NO_DIGITS = st.text(alphabet=st.characters(exclude_categories=_DIGITS), max_size=30)


_UUID_SHAPE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


@settings(max_examples=300)
@given(card_numbers(), st.sampled_from(["", " ", "-"]), _NO_DIGITS, _NO_DIGITS)
def test_no_valid_card_number_survives(digits: str, sep: str, before: str, after: str) -> None:
    text = before + _formatted(digits, sep) + after
    assume(not _UUID_SHAPE.search(text))  # a UUID is an identifier, never a card (next test)
    out = redact_attributes({"note": text})["note"]
    assert isinstance(out, str)
    assert digits not in re.sub(r"[ \-]", "", out)
    assert REDACTED in out


def test_uuid_with_a_luhn_valid_digit_run_is_not_a_card() -> None:
    # A real correlation id the end-to-end test saw mangled: "41-8326-4896-8814-8" passes the Luhn check.
    cid = "d653cd41-8326-4896-8814-8d6608b839dc"
    assert redact_attributes({"correlation.id": cid, "note": f"request {cid} done"}) == {
        "correlation.id": cid,
        "note": f"request {cid} done",
    }
    assert redact_text("card 4111-1111-1111-1111 paid") == f"card {REDACTED} paid"


@given(st.text(max_size=80))
def test_redaction_never_raises_and_is_idempotent(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once


# ------------------------------------------------------------------------------------ collector face


class _Sink:
    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def consume(self, signal: Signal, request: Request) -> None:
        self.requests.append(request)


def _run(config: RedactionConfig, signal: Signal, request: Request) -> None:
    (factory,) = factories
    assert config.validate() == []
    processor = factory.create(CreateSettings(ComponentID("redaction"), signal), config, _Sink())
    asyncio.run(processor.consume(signal, request))


def _trace(attrs: dict[str, object], event: dict[str, object] | None = None) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(name="s")
    for key, value in attrs.items():
        set_attribute(span.attributes, key, value)
    if event:
        ev = span.events.add(name="exception")
        for key, value in event.items():
            set_attribute(ev.attributes, key, value)
    return request


SPAN = {
    "http.request.header.authorization": ["Bearer abcdefghijk"],
    "db.statement": "select * from t where card = '4111111111111111'",
    "gen_ai.usage.input_tokens": 42,
    "note": "order 42",
    "customer.email": "a@b.c",
}


def test_collector_defaults_mask_builtins_and_keep_everything_else() -> None:
    request = _trace(SPAN, event={"exception.message": "login failed for password=hunter2"})
    _run(RedactionConfig(), Signal.TRACES, request)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    attrs = attributes_to_dict(span.attributes)
    assert attrs == {
        "http.request.header.authorization": [REDACTED],
        "db.statement": f"select * from t where card = '{REDACTED}'",
        "gen_ai.usage.input_tokens": 42,
        "note": "order 42",
        "customer.email": "a@b.c",
    }
    assert attributes_to_dict(span.events[0].attributes) == {
        "exception.message": f"login failed for password={REDACTED}"
    }


def test_collector_upstream_keys_and_debug_summary() -> None:
    request = _trace(SPAN)
    config = RedactionConfig(
        allow_all_keys=False,
        allowed_keys=["http.request.header.authorization", "db.statement", "gen_ai.usage.input_tokens"],
        ignored_keys=["note"],
        blocked_values=[r"[a-z]+@[a-z]+\.[a-z]+"],
        summary="debug",
    )
    _run(config, Signal.TRACES, request)
    attrs = attributes_to_dict(request.resource_spans[0].scope_spans[0].spans[0].attributes)
    assert "customer.email" not in attrs  # not allowed: removed
    assert attrs["note"] == "order 42"  # ignored: untouched
    assert attrs["gen_ai.usage.input_tokens"] == 42
    assert attrs["redaction.redacted.keys"] == "customer.email"
    assert attrs["redaction.redacted.count"] == 1
    assert attrs["redaction.masked.keys"] == "db.statement,http.request.header.authorization"
    assert attrs["redaction.masked.count"] == 2
    assert attrs["redaction.ignored.count"] == 1


def test_collector_blocked_values_blocked_keys_allowed_values_and_info_summary() -> None:
    request = _trace({"email": "mail a@b.c now", "internal.id": "x", "safe": "sk-test-only-0123456789abcdef"})
    config = RedactionConfig(
        blocked_values=[r"[a-z]+@[a-z]+\.[a-z]+"],
        blocked_key_patterns=[r"^internal\."],
        allowed_values=[r"^sk-test-only-"],
        summary="info",
    )
    _run(config, Signal.TRACES, request)
    attrs = attributes_to_dict(request.resource_spans[0].scope_spans[0].spans[0].attributes)
    assert attrs["email"] == f"mail {REDACTED} now"
    assert attrs["internal.id"] == REDACTED
    assert attrs["safe"] == "sk-test-only-0123456789abcdef"
    assert attrs["redaction.masked.count"] == 2
    assert "redaction.masked.keys" not in attrs and "redaction.redacted.count" not in attrs


def test_collector_builtins_off_and_redact_all_types() -> None:
    request = _trace({"password": "hunter2", "pin": 4111111111111111})
    _run(RedactionConfig(builtin_patterns=False), Signal.TRACES, request)
    attrs = attributes_to_dict(request.resource_spans[0].scope_spans[0].spans[0].attributes)
    assert attrs == {"password": "hunter2", "pin": 4111111111111111}
    _run(RedactionConfig(redact_all_types=True), Signal.TRACES, request)
    attrs = attributes_to_dict(request.resource_spans[0].scope_spans[0].spans[0].attributes)
    assert attrs == {"password": REDACTED, "pin": REDACTED}


def test_collector_logs_body_and_metric_point_attributes() -> None:
    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add()
    record.body.string_value = "user logged in with Bearer abcdefghijkl"
    set_attribute(record.attributes, "api_key", "k")
    _run(RedactionConfig(), Signal.LOGS, logs)
    assert record.body.string_value == f"user logged in with Bearer {REDACTED}"
    assert attributes_to_dict(record.attributes) == {"api_key": REDACTED}

    metrics = ExportMetricsServiceRequest()
    point = metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="m").sum.data_points.add()
    set_attribute(point.attributes, "session_token", "abc")
    set_attribute(point.attributes, "gen_ai.token.type", "input")
    _run(RedactionConfig(), Signal.METRICS, metrics)
    assert attributes_to_dict(point.attributes) == {"session_token": REDACTED, "gen_ai.token.type": "input"}


@pytest.mark.parametrize("key", ["passWord", "pass_word", "PASS-WORD", "db.password", "Pass.Word", "api.key"])
def test_sensitive_keys_match_by_normalised_name(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize("key", ["auth.passwordless", "password_policy.length_min", "keyboard", "tokenizer"])
def test_normalised_matching_needs_the_word_to_end_a_segment(key: str) -> None:
    # password_policy.length_min masks (the word ends a segment); the rest name no secret.
    assert is_sensitive_key(key) is (key == "password_policy.length_min")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Token abc123def", f"Authorization: Token {REDACTED}"),
        ("authorization=Bearer abcdefghijk", f"authorization=Bearer {REDACTED}"),
        ("Proxy-Authorization: s3cr3t", f"Proxy-Authorization: {REDACTED}"),
        ("pass_word=hunter2 ok", f"pass_word={REDACTED} ok"),
    ],
)
def test_authorization_headers_and_separated_pairs_in_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_nested_maps_and_arrays_are_walked_by_their_own_keys() -> None:
    value = {"db": {"passWord": "hunter2", "host": "h"}, "hdrs": ["Bearer abcdefghijk", {"api_key": "k"}]}
    assert redact_attributes({"config": value}) == {
        "config": {"db": {"passWord": REDACTED, "host": "h"}, "hdrs": [f"Bearer {REDACTED}", {"api_key": REDACTED}]}
    }
    assert redact_attributes({"config": {"x": "plain"}}) == {"config": {"x": "plain"}}


def _nested(depth: int, leaf: object) -> object:
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def test_collector_walks_nested_values_and_masks_what_is_too_deep() -> None:
    request = _trace(
        {
            "config": {"db": {"pass_word": "hunter2", "port": 5432}, "list": [{"secret": "s"}, "ok"]},
            "deep": _nested(REDACTION_MAX_DEPTH + 5, "plain"),
            "shallow": _nested(3, "plain"),
        }
    )
    _run(RedactionConfig(), Signal.TRACES, request)
    attrs = attributes_to_dict(request.resource_spans[0].scope_spans[0].spans[0].attributes)
    assert attrs["config"] == {"db": {"pass_word": REDACTED, "port": 5432}, "list": [{"secret": REDACTED}, "ok"]}
    assert attrs["shallow"] == _nested(3, "plain")
    assert REDACTED in repr(attrs["deep"]) and "plain" not in repr(attrs["deep"])


def test_collector_covers_every_attribute_bearing_field() -> None:
    secret = "Bearer abcdefghijk"
    traces = _trace({"a": secret})
    rs = traces.resource_spans[0]
    set_attribute(rs.resource.attributes, "db.password", "hunter2")
    set_attribute(rs.scope_spans[0].scope.attributes, "x", secret)
    span = rs.scope_spans[0].spans[0]
    set_attribute(span.events.add(name="e").attributes, "passWord", "hunter2")
    set_attribute(span.links.add().attributes, "x", secret)
    span.status.message = f"upstream said {secret}"
    logs = ExportLogsServiceRequest()
    rl = logs.resource_logs.add()
    set_attribute(rl.resource.attributes, "pass_word", "hunter2")
    map_body = rl.scope_logs.add().log_records.add()
    set_attribute(map_body.body.kvlist_value.values, "password", "hunter2")
    array_body = rl.scope_logs[0].log_records.add()
    array_body.body.array_value.values.add(string_value=f"Authorization: Token {secret}")
    metrics = ExportMetricsServiceRequest()
    rm = metrics.resource_metrics.add()
    set_attribute(rm.resource.attributes, "api-key", "k")
    point = rm.scope_metrics.add().metrics.add(name="m").histogram.data_points.add()
    set_attribute(point.exemplars.add().filtered_attributes, "token", "t")
    for signal, request in ((Signal.TRACES, traces), (Signal.LOGS, logs), (Signal.METRICS, metrics)):
        _run(RedactionConfig(), signal, request)
        text = str(request)
        assert "hunter2" not in text and "abcdefghijk" not in text and '"k"' not in text and '"t"' not in text
        assert text.count(REDACTED) >= 2, text


def test_config_validate_reports_every_bad_field() -> None:
    errors = RedactionConfig(
        blocked_values=["("],
        allowed_values=["[x"],
        summary="loud",  # type: ignore[arg-type]  # the bad value is the point
        allow_all_keys=False,
    ).validate()
    assert [e.split(":")[0] for e in errors] == [
        "blocked_values[0]",
        "allowed_values[0]",
        "summary",
        "allowed_keys",
    ]


_FRAGMENTS = st.sampled_from(
    [
        "Bearer ",
        "BASIC ",
        "eyJ",
        "sk-",
        "AKIA",
        "://",
        "u:p@",
        "PassWord=",
        "Token: ",
        "4111",
        " ",
        "-",
        "\u017f",  # long s: case-folds to "s" in Unicode regexes
        "K",
    ]
)


@settings(max_examples=300)
@given(st.lists(st.one_of(_FRAGMENTS, st.text(max_size=6)), max_size=12))
def test_cheap_precheck_never_misses_a_pattern_match(parts: list[str]) -> None:
    from processors._redaction_text import _VALUE_PATTERN, _might_match

    text = "".join(parts)
    if _VALUE_PATTERN.search(text) is not None:
        assert _might_match(text)
