"""Where the UI shows a trace or a request: URLs the CLI and the demo print next to trace and correlation ids."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode

import yaml

from ..config import config_from_file

__all__ = ["trace_url", "ui_base_url"]

# A listener on every interface is reached on the loopback from this machine.
_ANY_HOST = ("", "0.0.0.0", "::", "[::]")


def ui_base_url(config_path: Path) -> str | None:
    """``http://host:port`` of the UI the collector config's ``analytics`` extension serves; None without one (or
    when the config cannot be read: links are a convenience, never a reason to fail a report)."""
    try:
        config = config_from_file(config_path) if config_path.is_file() else None
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if config is None:
        return None
    host, _, port = config.endpoint.rpartition(":")
    host = "127.0.0.1" if host in _ANY_HOST else host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def trace_url(base: str, trace_id: str | None = None, correlation_id: str | None = None) -> str:
    """The UI page of a trace, or the trace search for a correlation id, under ``base`` (http://host:port)."""
    root = base.rstrip("/")
    if trace_id:
        return f"{root}/traces/{quote(trace_id)}"
    return f"{root}/traces?{urlencode({'correlation_id': correlation_id or ''})}"
