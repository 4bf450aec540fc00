"""``otel-metrics db …`` against a real database: by --dsn, and by a config whose embedded server it
starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from collector.cli import app
from collector.exporters.postgres import database, schema


def test_db_migrate_status_retention_by_dsn(pg_schemas: Any) -> None:
    dsn = pg_schemas.create(migrate=False)
    runner = CliRunner()
    try:
        before = runner.invoke(app, ["db", "status", "--dsn", dsn])
        assert before.exit_code == 2 and "pending" in before.output  # nothing applied yet
        result = runner.invoke(app, ["db", "migrate", "--dsn", dsn])
        assert result.exit_code == 0, result.output
        assert "applied 0001_functions" in result.output
        assert runner.invoke(app, ["db", "migrate", "--dsn", dsn]).output.strip() == "schema is up to date"
        status = runner.invoke(app, ["db", "status", "--dsn", dsn], env={"COLUMNS": "200"})  # no name cut short
        assert status.exit_code == 0 and "pending" not in status.output
        # Every table of the schema, the ones later migrations add included (read from the catalog, not a list).
        for table in ("spans", "span_rollups_1h", "span_rollups_unsampled_1h", "llm_calls", "quarantine", "budgets"):
            assert table in status.output, table
        retention = runner.invoke(app, ["db", "retention", "--dsn", dsn])
        assert retention.exit_code == 0 and "0 partition(s) dropped" in retention.output
    finally:
        pg_schemas.drop(dsn)


def test_embedded_database_found_from_the_config_file(sink_tmp_path: Path) -> None:
    tmp_path = sink_tmp_path
    config = tmp_path / "otel-collector.yaml"
    config.write_text(f"exporters:\n  postgres:\n    data_dir: {tmp_path / 'pg'}\n    retention:\n      logs: 7d\n")
    runner = CliRunner()
    result = runner.invoke(app, ["db", "migrate", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert database.exporter_config_from_file(config).retention.logs == "7d"
    try:
        with database.connect_from_config(config) as conn:
            st = schema.status(conn)
            assert [a.version for a in st.applied] == [m.version for m in schema.available()]
            # A new embedded server runs with the sink's settings, those read only at start included.
            for name, value in database.embedded_settings().items():
                assert conn.execute(f"SELECT current_setting('{name}')").fetchone() == (value,), name
    finally:
        database.detach_all()
    # A config without a postgres exporter is a clear error naming the file.
    bad = tmp_path / "bad.yaml"
    bad.write_text("exporters:\n  debug: {}\n")
    result = runner.invoke(app, ["db", "status", "--config", str(bad)])
    assert result.exit_code == 1 and "no 'postgres' exporter" in result.output


def test_embedded_server_stops_with_its_last_user_even_after_a_kill_9(sink_tmp_path: Path) -> None:
    import json
    import subprocess

    from collector.exporters.postgres.config import PostgresExporterConfig

    config = PostgresExporterConfig(data_dir=str(sink_tmp_path / "pg"))
    first = database.open_database(config)
    first.close()  # initialised, then stopped: this process was the only user
    # A collector that used the server was killed with -9: its pid stays in pgserver's list of users.
    dead = subprocess.Popen(["true"])
    dead.wait()
    handles = sink_tmp_path / "pg" / ".handle_pids.json"
    handles.write_text(json.dumps([dead.pid]))
    db = database.open_database(config)
    with db.connect(autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        # Settings are applied when the server is created only: a later change is the user's and is kept.
        assert conn.execute("SELECT current_setting('wal_init_zero')").fetchone() == ("off",)
        conn.execute("ALTER SYSTEM SET wal_init_zero = 'on'")
    assert (sink_tmp_path / "pg" / "postmaster.pid").exists()
    db.close()
    assert not (sink_tmp_path / "pg" / "postmaster.pid").exists()  # stopped: the dead user was not waited for
    again = database.open_database(config)
    try:
        with again.connect() as conn:
            assert conn.execute("SELECT current_setting('wal_init_zero')").fetchone() == ("on",)
    finally:
        again.close()
