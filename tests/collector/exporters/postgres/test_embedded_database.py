"""The embedded PostgreSQL (pgserver) as the collector runs it: a private data directory whose parents keep their
modes (pgserver, run as root, opens every parent to everyone), and a SIGTERMed collector whose server hangs still
exits 0 within --shutdown-timeout."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import pytest

from collector.exporters.postgres.config import PostgresExporterConfig
from collector.exporters.postgres.database import open_database

REPO = Path(__file__).resolve().parents[4]


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _exited(process: psutil.Process) -> bool:
    try:
        return bool(process.status() == psutil.STATUS_ZOMBIE)  # exited; nothing here may reap it
    except psutil.NoSuchProcess:
        return True


def _postmaster(data_dir: Path) -> psutil.Process:
    return psutil.Process(int((data_dir / "postmaster.pid").read_text().split()[0]))


# Run as root, PostgreSQL runs as pgserver's own user, which must pass through (never list) the parents.
PARENT_MODE = 0o750 | (0o011 if os.geteuid() == 0 else 0)


def test_embedded_data_directory_is_private_and_its_parents_keep_their_modes(sink_tmp_path: Path) -> None:
    sink_tmp_path.chmod(0o750)
    data_dir = sink_tmp_path / "state" / "postgres"
    database = open_database(PostgresExporterConfig(data_dir=str(data_dir)))
    try:
        postmaster = _postmaster(data_dir)
        with database.connect(autocommit=True) as conn:  # the server works with its parents closed again
            conn.execute("CREATE TABLE t (secret text)")
            conn.execute("INSERT INTO t VALUES ('x')")
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
        assert _mode(sink_tmp_path) == PARENT_MODE
        assert _mode(sink_tmp_path / "state") == 0o700 | (PARENT_MODE & 0o011)  # created by us
        assert _mode(data_dir) == 0o700
        loose = [
            f"{p.relative_to(data_dir)} {_mode(p):o}"
            for p in data_dir.rglob("*")
            if not p.is_socket() and _mode(p) & 0o077
        ]
        assert loose == []
    finally:
        database.close()
    assert _exited(postmaster)
    assert _mode(sink_tmp_path) == PARENT_MODE


CONFIG = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  postgres:
    data_dir: {data_dir}
    retention_check_interval: 0
    sending_queue:
      storage: file_storage
extensions:
  file_storage:
    directory: {queue}
service:
  extensions: [file_storage]
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [postgres]
"""


def test_sigterm_while_the_embedded_server_hangs_exits_0_and_stops_it(sink_tmp_path: Path) -> None:
    data_dir = sink_tmp_path / "postgres"
    config = sink_tmp_path / "collector.yaml"
    config.write_text(CONFIG.format(data_dir=data_dir, queue=sink_tmp_path / "queue"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "--config", str(config), "--shutdown-timeout", "4"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    postmaster: psutil.Process | None = None
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if re.search("collector started", line):
                break
        else:
            pytest.fail("collector did not start:\n" + "".join(seen))
        postmaster = _postmaster(data_dir)
        postmaster.suspend()  # SIGSTOP: the server hangs (a stalled disk looks the same from outside)
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
        assert proc.returncode == 0, "".join(seen) + rest
        assert "did not stop within" in rest  # it was killed, not waited for
        assert _exited(postmaster)
    finally:
        if proc.poll() is None:
            proc.kill()
        if postmaster is not None and not _exited(postmaster):
            with contextlib.suppress(psutil.Error):
                postmaster.kill()
    # The next start recovers from the WAL: the data directory is usable.
    database = open_database(PostgresExporterConfig(data_dir=str(data_dir)))
    try:
        with psycopg.connect(database.dsn, autocommit=True, connect_timeout=30) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        database.close()
