"""The SDK version range: what pyproject.toml declares, what is installed, and where the fast paths use internals."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from processors import _sdk_internals

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _declared() -> Requirement:
    dependencies = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    (sdk,) = [Requirement(d) for d in dependencies if Requirement(d).name == "opentelemetry-sdk"]
    return sdk


def test_pyproject_declares_the_range_the_code_states() -> None:
    declared = _declared().specifier
    assert str(declared) == ",".join(sorted(_sdk_internals.DECLARED_SDK.split(",")))
    assert any(s.operator == "<" for s in declared), "the SDK needs an upper bound"


def test_the_installed_sdk_is_inside_the_declared_range() -> None:
    installed = Version(metadata.version("opentelemetry-sdk"))
    assert _declared().specifier.contains(installed), f"opentelemetry-sdk {installed} is outside {_declared()}"


def test_the_installed_sdk_is_one_the_fast_paths_were_tested_on() -> None:
    # A newer SDK is safe (the fast paths switch to the public API, which the tests run too: the sdk_path
    # fixture) but slower: re-run the fast-path tests on it and extend TESTED_SDK.
    installed = _sdk_internals.installed_sdk()
    assert installed is not None
    first, last = _sdk_internals.TESTED_SDK
    assert first <= installed <= last, f"opentelemetry-sdk {installed} is not in TESTED_SDK {first}..{last}"
    assert _sdk_internals.use_sdk_internals


def test_fast_paths_are_off_on_an_untested_sdk() -> None:
    assert not _sdk_internals._tested((_sdk_internals.TESTED_SDK[1][0], _sdk_internals.TESTED_SDK[1][1] + 1))
    assert not _sdk_internals._tested((_sdk_internals.TESTED_SDK[0][0], _sdk_internals.TESTED_SDK[0][1] - 1))
    assert not _sdk_internals._tested(None)
