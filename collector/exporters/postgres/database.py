"""Where the sink's database is: a ``postgresql://`` URL, or an embedded PostgreSQL from the pgserver wheel.

The collector, ``otel-metrics db …`` and analytics find the same database from the same collector config file
(``dsn_from_config`` / ``connect_from_config``). An embedded server is shared: several processes (and several
exporters in one process) attach to the one running under ``data_dir``; pgserver counts the processes and the
last one to leave stops it. A process killed with ``kill -9`` never leaves, so dead pids are pruned on attach.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import stat
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

from collector.confmap.sections import component_config
from collector.extensions.file_storage.private import make_private_dir, parents_keep_modes, restrict_file

from .config import PostgresExporterConfig

__all__ = [
    "Database",
    "connect_from_config",
    "detach_all",
    "dsn_from_config",
    "embedded_settings",
    "exporter_config_from_file",
    "open_database",
]

_log = logging.getLogger("otel_metrics.collector.postgres")
# How long an embedded server gets to stop (fast shutdown) before it is killed.
STOP_TIMEOUT = 3.0
KILL_WAIT = 2.0  # for a killed server to be gone
_SEARCH = stat.S_IXGRP | stat.S_IXOTH
_HANDLES = ".handle_pids.json"  # pgserver's list of the processes attached to a server

_lock = threading.Lock()
# data_dir -> [pgserver handle, users in this process]
_embedded: dict[Path, list[Any]] = {}
# data_dir -> pgserver handle being left by a thread right now (detach_all finishes that too: the thread may be one
# of an exporter abandoned at its shutdown bound, which the process will not wait for).
_leaving: dict[Path, Any] = {}


@dataclass
class Database:
    dsn: str
    data_dir: Path | None = None  # set for an embedded server

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, **kwargs)

    def close(self, timeout: float = STOP_TIMEOUT) -> None:
        """Detach from an embedded server; the last process to detach stops it, within ``timeout`` seconds."""
        if self.data_dir is None:
            return
        with _lock:
            entry = _embedded.get(self.data_dir)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del _embedded[self.data_dir]
            _leaving[self.data_dir] = entry[0]
        _leave(self.data_dir, entry[0], timeout)
        self.data_dir = None


def _get_server(data_dir: Path) -> Any:
    import pgserver

    # Run as root, pgserver starts PostgreSQL as its own user and opens every directory above data_dir to
    # everyone (g+rx,o+rx up to /) so that user can reach it. The server does need to pass through them for as
    # long as it runs (its socket's lock file is in data_dir, by absolute path), but never to list them: only the
    # search bit stays. Run as any other user, nothing changes.
    with parents_keep_modes(data_dir, allow=_SEARCH if os.geteuid() == 0 else 0):
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
    restrict_file(data_dir / _HANDLES)
    return server


def _detach(server: Any, timeout: float) -> None:
    """pgserver's cleanup (leave the handle list; the last process out stops the server), with a bounded stop.

    pgserver's own stop is ``pg_ctl -w stop``, which waits as long as a hung server (disk stalls, SIGSTOP) takes:
    a SIGTERMed collector then outlived its --shutdown-timeout. Here a fast shutdown gets ``timeout`` seconds,
    then the server is killed: committed data is in its WAL and recovered at the next start.
    """
    from pgserver.postgres_server import PostgresServer

    atexit.unregister(server._cleanup)  # the exit hook would run pg_ctl's unbounded stop again
    with PostgresServer._lock:
        pids = server.global_process_id_list.get_and_remove(os.getpid())
        if pids != [os.getpid()]:
            return  # another process still uses it (or it was already left)
        PostgresServer._instances.pop(server.pgdata, None)
        info = server._postmaster_info
    if info is not None:
        _stop_postmaster(info.process, server.pgdata, timeout)


def _leave(data_dir: Path, server: Any, timeout: float) -> None:
    try:
        _detach(server, timeout)
    finally:
        with _lock:
            _leaving.pop(data_dir, None)


def _finish_leaving(server: Any, timeout: float) -> None:
    """Stop a server another thread of this process is leaving, unless another process still uses it."""
    info = server._postmaster_info
    others = [pid for pid in server.global_process_id_list.get() if pid != os.getpid() and psutil.pid_exists(pid)]
    if info is not None and not others:
        _stop_postmaster(info.process, server.pgdata, timeout)


def _stop_postmaster(process: psutil.Process, data_dir: Path, timeout: float) -> None:
    try:
        children = process.children(recursive=True)
        process.send_signal(signal.SIGINT)  # fast shutdown: end sessions, checkpoint, exit
    except psutil.NoSuchProcess:
        return
    if _gone(process, timeout):
        return
    _log.warning("embedded PostgreSQL did not stop within %.1fs; killing it (it recovers from its WAL)", timeout)
    for proc in (process, *children):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()  # SIGKILL also ends a stopped (SIGSTOP) process
    if _gone(process, KILL_WAIT):
        # Killed, its lock files stay (pgserver puts the socket's in data_dir too). Where nothing reaps orphans
        # (PID 1 in a container), the dead server is a zombie whose pid still exists: PostgreSQL and pgserver
        # would both take it for a running server.
        for lock in (data_dir / "postmaster.pid", *data_dir.glob(".s.PGSQL.*.lock")):
            with contextlib.suppress(OSError):
                lock.unlink()


def _gone(process: psutil.Process, timeout: float) -> bool:
    """Wait up to ``timeout`` for ``process`` to exit; a zombie has exited (nobody may ever reap it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _prune_dead_handles(data_dir: Path) -> None:
    """Drop pids of processes that died without detaching (kill -9) from pgserver's handle list."""
    from pgserver.postgres_server import PostgresServer

    path = data_dir / _HANDLES
    with PostgresServer._lock:
        try:
            pids = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        alive = [p for p in pids if psutil.pid_exists(p)]
        if alive != pids:
            path.write_text(json.dumps(alive))


def open_database(config: PostgresExporterConfig) -> Database:
    """The configured database; starts (or attaches to) the embedded server when ``dsn`` is
    absent/embedded."""
    if not config.embedded:
        assert config.dsn is not None
        return Database(config.dsn)
    data_dir = Path(config.data_dir).expanduser().resolve()
    with _lock:
        entry = _embedded.get(data_dir)
        if entry is None:
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

            if not data_dir.parent.exists():
                make_private_dir(data_dir.parent)
            if data_dir.exists():
                _prune_dead_handles(data_dir)
            created = not (data_dir / "PG_VERSION").exists()
            server = _get_server(data_dir)
            if created:
                # pgserver starts the server right after initdb: settle the settings, then restart once to apply
                # those read only at start. Later changes (ALTER SYSTEM) are the user's and are kept.
                with psycopg.connect(server.get_uri(), autocommit=True) as conn:
                    for name, value in embedded_settings().items():
                        conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                _detach(server, STOP_TIMEOUT)
                server = _get_server(data_dir)
            entry = _embedded[data_dir] = [server, 0]
        entry[1] += 1
        return Database(entry[0].get_uri(), data_dir)


def embedded_settings() -> dict[str, str]:
    """Settings for a new embedded server: PostgreSQL's defaults are sized for a machine it shares, and this server
    is the sink's own, written to continuously (docs/schema.md, "Write throughput")."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # not POSIX: keep the default size
        memory = 1 << 30
    shared_mib = max(128, min(512, memory // 8 >> 20))
    return {
        # The spans indexes' working set outgrew 128MB: backends were writing out evicted pages themselves.
        "shared_buffers": f"{shared_mib}MB",
        # Fewer checkpoints under sustained ingest, so fewer full-page images in the WAL.
        "max_wal_size": "4GB",
        # New WAL segments are not zero-filled first: 8 % of the backends' CPU while the WAL grows.
        "wal_init_zero": "off",
    }


def exporter_config_from_file(
    config_path: str | os.PathLike[str], exporter: str | None = None
) -> PostgresExporterConfig:
    """The ``postgres`` exporter's config in a collector config file (the first one, or the named id)."""
    config = component_config(config_path, "exporters", "postgres", PostgresExporterConfig, exporter)
    if config is None:
        raise ValueError(f"{config_path}: exporters: no {exporter or 'postgres'!r} exporter configured")
    return config


def dsn_from_config(config_path: str | os.PathLike[str], exporter: str | None = None) -> str:
    """The database URL for a collector config; starts/attaches the embedded server if need be (kept for the
    life of this process)."""
    return open_database(exporter_config_from_file(config_path, exporter)).dsn


def connect_from_config(
    config_path: str | os.PathLike[str], exporter: str | None = None, **kwargs: Any
) -> psycopg.Connection[Any]:
    """A psycopg connection (also a context manager) to the database of a collector config."""
    return psycopg.connect(dsn_from_config(config_path, exporter), **kwargs)


def detach_all(timeout: float = STOP_TIMEOUT) -> None:
    """Detach from every embedded server this process attached to (the last process out stops each, within
    ``timeout`` seconds in all)."""
    deadline = time.monotonic() + timeout
    with _lock:
        entries = {data_dir: entry[0] for data_dir, entry in _embedded.items()}
        _embedded.clear()
        others = dict(_leaving)
        _leaving.update(entries)
    for data_dir, server in entries.items():
        _leave(data_dir, server, max(deadline - time.monotonic(), 0.1))
    for server in others.values():
        _finish_leaving(server, max(deadline - time.monotonic(), 0.1))
