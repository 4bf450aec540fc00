"""Directories and files that hold telemetry (queues here, the embedded database in the postgres exporter) are
private to the collector's user.

Telemetry on disk may hold what redaction could not recognise, so what we create is owner-only: directories 0700,
files 0600, whatever the umask. Directories that already exist above ours are the user's and keep their modes.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "make_private_dir", "parents_keep_modes", "restrict_file"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents as 0700; an existing ``path`` is made 0700 (it is ours), existing
    parents are left alone."""
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process created it first: still ours to restrict
            directory.mkdir(mode=DIR_MODE)
        os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered by the umask
    if not missing and stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)


def restrict_file(path: Path) -> None:
    """Make an existing file 0600 (files written by an older version, or by a library with its own modes)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_IMODE(path.stat().st_mode) != FILE_MODE:
            os.chmod(path, FILE_MODE)


@contextlib.contextmanager
def parents_keep_modes(path: Path, *, allow: int = 0) -> Iterator[None]:
    """Restore the modes of ``path``'s existing ancestors on exit, whatever ran inside changed them, keeping only
    the ``allow`` bits of what was added."""
    before: list[tuple[Path, int]] = []
    for parent in path.resolve().parents:
        with contextlib.suppress(OSError):
            before.append((parent, stat.S_IMODE(parent.stat().st_mode)))
    try:
        yield
    finally:
        for parent, mode in before:
            with contextlib.suppress(OSError):
                now = stat.S_IMODE(parent.stat().st_mode)
                if now != mode:
                    os.chmod(parent, mode | (now & allow))
