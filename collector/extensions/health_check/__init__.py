"""The ``health_check`` extension: HTTP 200 when every pipeline's components are healthy, else 503.

The body is JSON with the overall status and per-component detail from the host. Options and defaults:
README.md.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.component import Extension, ExtensionFactory, Host
from collector.confighttp import ADMIN_LIMITS, HTTPServer, split_endpoint
from processors.pipeline import CreateSettings

__all__ = ["HealthCheck", "HealthCheckConfig", "factories"]

TYPE = "health_check"
# Upstream's default since v0.104: localhost only.
DEFAULT_ENDPOINT = "localhost:13133"
DEFAULT_PATH = "/"


@dataclass
class HealthCheckConfig:
    endpoint: str = DEFAULT_ENDPOINT
    path: str = DEFAULT_PATH

    def validate(self) -> list[str]:
        errors: list[str] = []
        try:
            split_endpoint(self.endpoint)
        except ValueError as exc:
            errors.append(f"endpoint: {exc}")
        if not self.path.startswith("/"):
            errors.append("path: must start with '/'")
        return errors


class HealthCheck(Extension):
    def __init__(self, settings: CreateSettings, config: HealthCheckConfig) -> None:
        self.settings = settings
        self.config = config
        self._host: Host | None = None
        self._server = HTTPServer(
            Starlette(routes=[Route(config.path, self._handle, methods=["GET", "HEAD"])]),
            config.endpoint,
            limits=ADMIN_LIMITS,
            name="health_check",
        )

    @property
    def port(self) -> int:
        return self._server.port

    def report(self) -> tuple[bool, dict[str, Any]]:
        status = dict(self._host.component_status()) if self._host is not None else {}
        pipelines = {k: v for k, v in status.items() if k.startswith("pipeline/")}
        healthy = bool(pipelines) and all(p["healthy"] for p in pipelines.values())
        up_since = self._host.up_since if self._host is not None else None
        body: dict[str, Any] = {
            "status": "Server available" if healthy else "Server not available",
            "healthy": healthy,
            "components": {k: dict(v) for k, v in status.items()},
        }
        if up_since:
            body["upSince"] = datetime.fromtimestamp(up_since, UTC).isoformat()
            body["uptime"] = f"{time.time() - up_since:.3f}s"
        return healthy, body

    async def _handle(self, request: Request) -> Response:
        healthy, body = self.report()
        return Response(json.dumps(body), 200 if healthy else 503, media_type="application/json")

    async def start(self, host: Host) -> None:
        self._host = host
        await self._server.start()
        self.settings.logger.info(
            "extension %s: health on %s%s (port %d)",
            self.settings.id,
            self.config.endpoint,
            self.config.path,
            self.port,
        )

    async def shutdown(self) -> None:
        await self._server.shutdown()


factories = (ExtensionFactory(type=TYPE, config_type=HealthCheckConfig, create=HealthCheck),)
