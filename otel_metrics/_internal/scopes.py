"""``correlation_scope`` and ``business_context``: context managers that also decorate sync and async
functions."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar, cast

from opentelemetry import context as context_api

from otel_metrics._internal.safety import internal_error, logger, report_once
from processors.business import set_business_attributes
from processors.correlation import get_correlation_id as _get
from processors.correlation import new_correlation_id, set_correlation_id, validate_correlation_id

F = TypeVar("F", bound=Callable[..., Any])
_ATTRIBUTE_TYPES = (str, bool, int, float)
# Keyword-friendly spellings of the convention names (docs/conventions.md), so
# business_context(tenant_id="t1")
# works as business_context(**{"tenant.id": "t1"}) does. Other keys are used as given.
ATTRIBUTE_ALIASES = {
    "tenant_id": "tenant.id",
    "user_id": "user.id",
    "session_id": "session.id",
    "feature_name": "feature.name",
    "agent_name": "gen_ai.agent.name",
    "agent_role": "agent.role",
}


class _Scope:
    """Attach a context on enter, detach on exit. As a decorator, each call enters a fresh copy of the
    scope."""

    def __init__(self) -> None:
        self._tokens: list[object] = []

    def _context(self) -> context_api.Context:  # pragma: no cover - overridden
        raise NotImplementedError

    def _fresh(self) -> _Scope:  # pragma: no cover - overridden
        raise NotImplementedError

    def _enter(self) -> None:
        try:
            self._tokens.append(context_api.attach(self._context()))
        except Exception:
            internal_error(type(self).__name__ + ".__enter__")
            self._tokens.append(None)

    def _exit(self) -> None:
        token = self._tokens.pop() if self._tokens else None
        if token is not None:
            try:
                context_api.detach(token)  # type: ignore[arg-type]
            except Exception:
                internal_error(type(self).__name__ + ".__exit__")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit()

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit()

    def __enter__(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._fresh():
                    return await fn(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return fn(*args, **kwargs)

        return cast(F, wrapper)


class correlation_scope(_Scope):
    """Run a block (or every call of a function) under one correlation id, carried in W3C baggage.

    ``correlation_scope()`` generates a UUID4; ``correlation_scope("abc")`` uses the given id if it is valid
    (1..128 chars of ``[A-Za-z0-9._:-]``) and otherwise replaces it with a new one and logs the replacement.
    ``with correlation_scope() as cid:`` gives the id in force.
    """

    def __init__(self, correlation_id: str | None = None) -> None:
        super().__init__()
        self._requested = correlation_id
        self.correlation_id: str | None = None

    def _fresh(self) -> correlation_scope:
        return correlation_scope(self._requested)

    def _context(self) -> context_api.Context:
        self.correlation_id = resolve_correlation_id(self._requested)
        return set_correlation_id(self.correlation_id)

    def __enter__(self) -> str:
        self._enter()
        return self.correlation_id or ""


def resolve_correlation_id(requested: object, *, source: str = "correlation_scope") -> str:
    """A valid id: ``requested`` if valid, else a new UUID4 (an invalid one is logged, truncated)."""
    if requested is None:
        return new_correlation_id()
    valid = validate_correlation_id(requested) if isinstance(requested, str) else None
    if valid is not None:
        return valid
    replacement = new_correlation_id()
    logger.warning(
        "otel_metrics: invalid correlation id %.140r from %s replaced with %s "
        "(expected 1..128 characters of [A-Za-z0-9._:-])",
        requested,
        source,
        replacement,
    )
    return replacement


def clean_attributes(attributes: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """Keep values OTel attributes accept (str, bool, int, float and homogeneous sequences of them)."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, _ATTRIBUTE_TYPES):
            out[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, _ATTRIBUTE_TYPES) for v in value):
            out[key] = tuple(value)
        else:
            report_once(
                f"{where}:{key}:{type(value).__name__}",
                "otel_metrics: %s attribute %r has unsupported type %s (expected str, bool, int, float or a "
                "sequence of them); using its str()",
                where,
                key,
                type(value).__name__,
            )
            out[key] = str(value)
    return out


class business_context(_Scope):
    """Attach business attributes (``tenant.id``, ``user.id``, ``gen_ai.agent.name`` ...) to every span
    started
    inside. ``propagate=True`` also sends them downstream in W3C baggage. Keys listed in
    ``configure(metric_dimensions=...)`` also become attributes of our metrics."""

    def __init__(self, *, propagate: bool = False, **attributes: Any) -> None:
        super().__init__()
        self._propagate = bool(propagate)
        self.attributes = clean_attributes(
            {ATTRIBUTE_ALIASES.get(k, k): v for k, v in attributes.items()}, where="business_context"
        )

    def _fresh(self) -> business_context:
        fresh = business_context(propagate=self._propagate)
        fresh.attributes = self.attributes
        return fresh

    def _context(self) -> context_api.Context:
        return set_business_attributes(self.attributes, propagate=self._propagate)

    def __enter__(self) -> dict[str, Any]:
        self._enter()
        return dict(self.attributes)


def get_correlation_id() -> str | None:
    """The correlation id of the current context (from W3C baggage), or None."""
    try:
        return _get()
    except Exception:
        internal_error("get_correlation_id")
        return None
