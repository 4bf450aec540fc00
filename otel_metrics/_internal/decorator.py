"""``@track_performance``: a span plus duration/calls/errors metrics per call, built for a cheap hot path.

Everything that does not depend on the call (span name, metric attribute dicts, the instruments) is computed
once per decorated function and cached; a call does a start_span, an attach, two clock reads and two metric
recordings. Failures in our code are logged and the user's function still runs.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any, Final, TypeVar, cast, overload

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode, TraceFlags

from otel_metrics._internal.fast_processors import (
    OUTCOME,
    STARTING,
    SUCCESS,
    add_missing_attributes,
    decorated_start_attributes,
)
from otel_metrics._internal.operation_metrics import OperationAggregator, Series
from otel_metrics._internal.safety import internal_error, logger
from otel_metrics._internal.scopes import clean_attributes
from otel_metrics._internal.state import STATE, metric_dimension_key
from processors.business import _BAGGAGE_CONTEXT_KEY, _LOCAL_KEY

F = TypeVar("F", bound=Callable[..., Any])

FAILURE = "failure"
ERROR_TYPE = "error.type"
OPERATION_NAME = "operation.name"
_MAX_RESULT_KEYS = 32
# SpanContext is typed as the tuple (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid); indexing
# it skips a Python property call per field on every call.
_TRACE_ID: Final = 0
_SPAN_ID: Final = 1
_FLAGS: Final = 3
_SAMPLED = TraceFlags.SAMPLED
_error_type_cache: dict[type[BaseException], str] = {}


def error_type(exc: BaseException) -> str:
    """The exception class's qualified name (semconv error.type): ``ValueError``, ``httpx.ConnectError``."""
    cls = type(exc)
    name = _error_type_cache.get(cls)
    if name is None:
        module = cls.__module__
        name = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
        _error_type_cache[cls] = name
    return name


def result_summary(result: Any) -> dict[str, Any]:
    """What include_metadata=True records: the result's success flag, a dict's keys, the length."""
    attrs: dict[str, Any] = {}
    success = result.get("success") if isinstance(result, Mapping) else getattr(result, "success", None)
    if isinstance(success, bool):
        attrs["result.success"] = success
    if isinstance(result, Mapping):
        attrs["result.keys"] = tuple(sorted(str(k) for k in list(result)[:_MAX_RESULT_KEYS]))
    if result is not None and not isinstance(result, str | bytes) and hasattr(result, "__len__"):
        with contextlib.suppress(Exception):
            attrs["result.length"] = len(result)
    attrs["result.type"] = type(result).__name__
    return attrs


class _Operation:
    """Per decorated function: its names, its series cache, and the bookkeeping of a finished call."""

    __slots__ = ("_last_ok", "_ok", "_ops", "_other", "include_metadata", "metadata", "name")

    def __init__(self, name: str, include_metadata: bool, metadata: Callable[[Any], Mapping[str, Any]] | None) -> None:
        self.name = name
        self.include_metadata = include_metadata
        self.metadata = metadata
        # success series by dimension key (the hot path), other series by (outcome, error.type, dimension key)
        self._ok: dict[Any, Series] = {}
        self._other: dict[Any, Series] = {}
        self._ops: OperationAggregator | None = None
        # The success series of the last (baggage, local business attributes, aggregator, dimension setting):
        # the dimensions come from the business attributes alone, so calls within one request (nested ones
        # too: see fast_processors.LastInputs) cost a few identity checks.
        self._last_ok: tuple[Any, Any, Any, Any, Series | None] = (None, None, None, None, None)

    def _series(self, parent: Context, outcome: str, err: str | None) -> Series:
        ops = STATE.ops
        if ops is not self._ops:  # reconfigured: new aggregator, maybe new dimensions
            self._ok.clear()
            self._other.clear()
            self._ops = ops
        dims = metric_dimension_key(parent) if STATE.settings.metric_dimensions else None
        cache, key = (self._ok, dims) if err is None else (self._other, (outcome, err, dims))
        series = cache.get(key)
        if series is None:
            attrs: dict[str, Any] = {OPERATION_NAME: self.name, OUTCOME: outcome}
            if err is not None:
                attrs[ERROR_TYPE] = err
            if dims:
                attrs.update(dims)
            series = ops.series((self.name, outcome, err, dims), attrs, err is not None)
            if len(cache) < 2048:  # bounded: dimension values come from user data
                cache[key] = series
        return series

    def record(self, span: trace_api.Span, parent: Context, elapsed: float, outcome: str, err: str | None) -> None:
        series = self._series(parent, outcome, err)
        if STATE.preaggregated:
            ctx = span.get_span_context()
            if ctx[_FLAGS] & _SAMPLED:
                series.add(elapsed, ctx[_TRACE_ID], ctx[_SPAN_ID])
            else:
                series.add(elapsed, 0, 0)
        else:  # not configured by us: the SDK histogram (calls/errors still come from the series counts)
            series.add(elapsed, 0, 0)
            STATE.instruments().duration.record(elapsed, series.attributes)

    def finish_ok(self, span: trace_api.Span, parent: Context, started: float, result: Any) -> None:
        elapsed = perf_counter() - started  # operation.outcome=success is set at start (decorated_start_attributes)
        if self.include_metadata:
            span.set_attributes(result_summary(result))
        if self.metadata is not None:
            self._custom_metadata(span, result)
        # Recorded while the span is still current, so the duration carries it as an exemplar.
        state = STATE
        ops, dimensions = state.ops, state.settings.metric_dimensions
        # processors.business._context_inputs, written out (every successful call)
        bag = parent.get(_BAGGAGE_CONTEXT_KEY) if _BAGGAGE_CONTEXT_KEY is not None else parent
        local = parent.get(_LOCAL_KEY)
        last_bag, last_local, last_ops, last_dimensions, series = self._last_ok
        if (
            series is None
            or last_bag is not bag
            or last_local is not local
            or last_ops is not ops
            or last_dimensions is not dimensions
        ):
            series = self._series(parent, SUCCESS, None)
            self._last_ok = (bag, local, ops, dimensions, series)
        if state.preaggregated:  # record() written out: this is every successful call
            ctx = span.get_span_context()
            if ctx[_FLAGS] & _SAMPLED:
                series.add(elapsed, ctx[_TRACE_ID], ctx[_SPAN_ID])
            else:
                series.add(elapsed, 0, 0)
        else:
            self.record(span, parent, elapsed, SUCCESS, None)

    def finish_error(self, span: trace_api.Span, parent: Context, started: float, exc: BaseException) -> None:
        elapsed = perf_counter() - started
        err = error_type(exc)
        if span.is_recording():
            span.set_attributes({OUTCOME: FAILURE, ERROR_TYPE: err})
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        self.record(span, parent, elapsed, FAILURE, err)

    def _custom_metadata(self, span: trace_api.Span, result: Any) -> None:
        try:
            extra = self.metadata(result) if self.metadata is not None else None
            if extra:
                span.set_attributes(clean_attributes(dict(extra), where="track_performance metadata"))
        except Exception:
            logger.warning("otel_metrics: metadata callable for %s raised; ignored", self.name, exc_info=True)


_Opened = tuple[Context, trace_api.Span, object, float]


def _close(opened: _Opened, finish: Callable[[trace_api.Span, Context, float, Any], None], outcome: Any) -> None:
    """``finish`` (the operation's finish_ok or finish_error) the span, then detach and end it."""
    parent, span, token, started = opened
    try:
        finish(span, parent, started, outcome)
    except Exception:
        internal_error("track_performance")
    finally:
        # Always detach and end, even if our bookkeeping failed: a leaked context would corrupt the caller's.
        try:
            context_api.detach(token)  # type: ignore[arg-type]
        finally:
            span.end()


def _default_service(fn: Callable[..., Any]) -> str:
    # A method's __qualname__ is "Class.method" (or "outer.<locals>.Class.method"): use the class name.
    parts = [p for p in fn.__qualname__.split(".")[:-1] if p != "<locals>"]
    if parts:
        return parts[-1]
    return (fn.__module__ or "app").rsplit(".", 1)[-1]


def _wrap(
    fn: F,
    service_name: str | None,
    name: str | None,
    include_metadata: bool,
    metadata: Callable[[Any], Mapping[str, Any]] | None,
) -> F:
    service = service_name or _default_service(fn)
    span_name = f"{service}.{name or fn.__name__}"
    op = _Operation(span_name, include_metadata, metadata)
    finish_ok, finish_error = op.finish_ok, op.finish_error
    # The hot path is written out (few helper calls) because each Python call costs ~0.1 µs here.
    get_current, attach, set_span = context_api.get_current, context_api.attach, trace_api.set_span_in_context
    state, starting = STATE, STARTING

    def open_span() -> _Opened | None:
        # The span's start attributes (fast_processors.decorated_start_attributes) are set by our processor when
        # it runs for this span (STARTING), else here; not passed to start_span: the SDK's per-attribute checks
        # at creation cost ~1 µs each (see fast_processors).
        try:
            parent = get_current()
            starting.parent = parent
            try:
                span = state.tracer.start_span(span_name, parent)
            finally:  # cleared, so the slot never keeps a span (and its provider) alive
                taken, starting.parent = starting.parent, None
            if taken is not span:
                add_missing_attributes(span, decorated_start_attributes(parent))
            return parent, span, attach(set_span(span, parent)), perf_counter()
        except Exception:
            internal_error("track_performance")
            return None

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            opened = open_span()
            if opened is None:
                return await fn(*args, **kwargs)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                _close(opened, finish_error, exc)
                raise
            _close(opened, finish_ok, result)
            return result

        return cast(F, async_wrapper)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opened = open_span()
        if opened is None:
            return fn(*args, **kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _close(opened, finish_error, exc)
            raise
        _close(opened, finish_ok, result)
        return result

    return cast(F, wrapper)


@overload
def track_performance(service_name: F, /) -> F: ...


@overload
def track_performance(
    service_name: str | None = None,
    *,
    name: str | None = None,
    include_metadata: bool = False,
    metadata: Callable[[Any], Mapping[str, Any]] | None = None,
) -> Callable[[F], F]: ...


def track_performance(
    service_name: Any = None,
    *,
    name: str | None = None,
    include_metadata: bool = False,
    metadata: Callable[[Any], Mapping[str, Any]] | None = None,
) -> Any:
    """Trace and measure every call of a sync or async function or method.

    Each call is a span ``{service}.{function}`` (service: the argument, else the class name for methods, else
    the module's last component; ``name`` replaces the function name) with ``operation.outcome``; on an
    exception the span is ERROR with an exception event and ``error.type`` and the exception propagates
    unchanged. Each call also records ``operation.duration`` (s), ``operation.calls`` and, on failure,
    ``operation.errors``. ``include_metadata=True`` adds a summary of the result (``result.success``,
    ``result.keys``, ``result.length``, ``result.type``); ``metadata=callable(result) -> dict`` adds your own
    attributes (its exceptions are logged, never raised). Works bare (``@track_performance``) or with
    arguments. Generator functions are not supported as such: the span would cover creating the generator.
    """
    if callable(service_name):
        return _wrap(service_name, None, name, include_metadata, metadata)
    if service_name is not None and not isinstance(service_name, str):
        logger.error("otel_metrics: track_performance service_name must be a str, got %r", service_name)
        service_name = str(service_name)

    def decorate(fn: F) -> F:
        try:
            return _wrap(fn, service_name, name, include_metadata, metadata)
        except Exception:
            internal_error("track_performance decoration")
            return fn

    return decorate
