"""Where the sink's database is: a ``postgresql://`` URL, or an embedded PostgreSQL from the pgserver wheel.

The collector, ``otel-metrics db …`` and analytics find the same database from the same collector config file
(``dsn_from_config`` / ``connect_from_config``). An embedded server is shared: several processes (and several
exporters in one process) attach to the one running under ``data_dir``; pgserver counts the processes and the
last one to leave stops it. A process killed with ``kill -9`` never leaves, so dead pids are pruned on attach.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from collector.config.sections import component_config

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

_lock = threading.Lock()
# data_dir -> [pgserver handle, users in this process]
_embedded: dict[Path, list[Any]] = {}


@dataclass
class Database:
    dsn: str
    data_dir: Path | None = None  # set for an embedded server

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, **kwargs)

    def close(self) -> None:
        """Detach from an embedded server; the last process to detach stops it."""
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
        entry[0].cleanup()
        self.data_dir = None


def _prune_dead_handles(data_dir: Path) -> None:
    """Drop pids of processes that died without detaching (kill -9) from pgserver's handle list."""
    import psutil
    from pgserver.postgres_server import PostgresServer

    path = data_dir / ".handle_pids.json"
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
            import pgserver

            data_dir.parent.mkdir(parents=True, exist_ok=True)
            if data_dir.exists():
                _prune_dead_handles(data_dir)
            created = not (data_dir / "PG_VERSION").exists()
            server = pgserver.get_server(data_dir, cleanup_mode="stop")
            if created:
                # pgserver starts the server right after initdb: settle the settings, then restart once to apply
                # those read only at start. Later changes (ALTER SYSTEM) are the user's and are kept.
                with psycopg.connect(server.get_uri(), autocommit=True) as conn:
                    for name, value in embedded_settings().items():
                        conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                server.cleanup()
                server = pgserver.get_server(data_dir, cleanup_mode="stop")
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


def detach_all() -> None:
    """Detach from every embedded server this process attached to (the last process out stops each)."""
    with _lock:
        entries = list(_embedded.values())
        _embedded.clear()
    for server, _users in entries:
        server.cleanup()
