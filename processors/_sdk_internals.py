"""Whether the fast paths may use the OpenTelemetry SDK's private internals on the installed SDK.

``otel_metrics._internal.fast_processors.add_missing_attributes`` writes into a live span's
``BoundedAttributes`` (``_dict``, ``_lock``, ``_immutable``, ``Span._lock``) and ``processors.sdk`` reads
``span._attributes._dict``: not public API, so any minor release may change them. They are used only on the SDK
minor versions they were written and tested against (``TESTED_SDK``); on any other version the public-API path
runs, which the tests run as well (they force it through ``use_sdk_internals``). pyproject.toml bounds the SDK to
``DECLARED_SDK``; a test checks the installed SDK is inside it.
"""

from __future__ import annotations

import re
from importlib import metadata

__all__ = ["DECLARED_SDK", "TESTED_SDK", "installed_sdk", "use_sdk_internals"]

# [first, last] minor versions (major, minor) whose internals the fast paths were tested on.
TESTED_SDK = ((1, 45), (1, 45))
# What pyproject.toml declares for opentelemetry-sdk (a test keeps the two equal).
DECLARED_SDK = ">=1.45,<2"


def installed_sdk() -> tuple[int, int] | None:
    """(major, minor) of the installed opentelemetry-sdk; None if it cannot be told."""
    try:
        found = re.match(r"(\d+)\.(\d+)", metadata.version("opentelemetry-sdk"))
    except metadata.PackageNotFoundError:
        return None
    return (int(found.group(1)), int(found.group(2))) if found else None


def _tested(version: tuple[int, int] | None) -> bool:
    return version is not None and TESTED_SDK[0] <= version <= TESTED_SDK[1]


# Read at each use (a module attribute, so tests can switch it off to run the public-API paths).
use_sdk_internals: bool = _tested(installed_sdk())
