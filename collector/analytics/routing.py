"""Route specs: one row of data per API route, from which ``AnalyticsAPI`` builds its routing (auth, body
handling, database access, errors) and ``openapi`` builds the OpenAPI document, so the two cannot drift.

A handler takes a ``Call``. A plain function runs in Starlette's thread pool with ``call.analytics`` bound to a
pooled connection; a coroutine function runs on the event loop without one (and may borrow one with
``call.with_analytics``). Another package adds routes by passing its own specs next to ``API_ROUTES``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from .config import AnalyticsConfig
from .params import ApiError, QueryArgs, checked_text
from .queries import Analytics

__all__ = ["ApiError", "Call", "Handler", "Param", "RouteSpec", "ServingApi"]

_T = TypeVar("_T")


class ServingApi(Protocol):
    """What a handler may ask of the API serving it (``api.AnalyticsAPI`` is the one), stated here so that route
    specs need not import the API that is built from them."""

    @property
    def config(self) -> AnalyticsConfig: ...

    @property
    def started(self) -> float:
        """When the API was created (epoch seconds)."""
        ...

    def component_status(self) -> Mapping[str, Mapping[str, Any]]: ...

    def openapi(self) -> dict[str, Any]: ...

    def run_with_analytics(self, fn: Callable[[Analytics], _T]) -> _T:
        """``fn`` over a pooled connection (blocking: call from a worker thread)."""
        ...


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter as the OpenAPI document states it (handlers parse their own through ``QueryArgs``)."""

    name: str
    type: str = "string"  # JSON schema type
    description: str = ""
    required: bool = False
    where: str = "query"  # or "path"
    enum: tuple[str, ...] = ()
    repeated: bool = False


@dataclasses.dataclass
class Call:
    """What a handler sees of one request."""

    request: Request
    args: QueryArgs
    body: Any  # the parsed JSON body of a mutating route, else None
    api: ServingApi
    bound: Analytics | None = None

    @property
    def analytics(self) -> Analytics:
        if self.bound is None:
            raise RuntimeError("this handler runs on the event loop: use call.with_analytics")
        return self.bound

    def path(self, name: str) -> str:
        return checked_text(name, str(self.request.path_params[name]))

    async def with_analytics(self, fn: Callable[[Analytics], _T]) -> _T:
        """``fn`` in the thread pool over a pooled connection."""
        return await run_in_threadpool(self.api.run_with_analytics, fn)


Handler = Callable[[Call], Any] | Callable[[Call], Awaitable[Any]]


@dataclasses.dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str  # under the API prefix (/api/v1), with {name} path parameters
    handler: Handler
    summary: str
    result: str | None = None  # schema name of the answer; None: a free-form object
    many: bool = False  # the {"items": [...]} envelope
    params: tuple[Param, ...] = ()
    body: str | None = None  # schema name of the JSON request body
    auth: bool = True  # False: answered without the bearer token (health, the OpenAPI document)

    @property
    def mutating(self) -> bool:
        """Anything but GET changes state, so it takes a JSON body (never a form a foreign page could post)."""
        return self.method != "GET"
