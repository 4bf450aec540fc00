"""``otel-metrics db …``: the sink database of a collector config (migrate, status, retention, psql).

The database is the one the config's ``postgres`` exporter writes to: its ``dsn``, or the embedded PostgreSQL
under its ``data_dir`` (started for the command if no collector is running, stopped again afterwards).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import typer

from collector.cli import app
from collector.exporters.postgres.config import PostgresExporterConfig
from collector.exporters.postgres.database import exporter_config_from_file, open_database
from collector.exporters.postgres.retention import ahead_seconds, apply_retention
from collector.exporters.postgres.schema import migrate, status

db_app = typer.Typer(
    name="db", help="The PostgreSQL sink database: migrate, status, retention, psql.", no_args_is_help=True
)
app.add_typer(db_app, name="db")

DEFAULT_CONFIG = Path("otel-collector.yaml")
_CONFIG = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="Collector config with a postgres exporter.")
_EXPORTER = typer.Option(None, "--exporter", help="Exporter id when the config has several (e.g. postgres/b).")
_DSN = typer.Option(None, "--dsn", help="A postgresql:// URL instead of the config's database.")


def _open(config: Path, exporter: str | None, dsn: str | None) -> Any:
    try:
        cfg = PostgresExporterConfig(dsn=dsn) if dsn else exporter_config_from_file(config, exporter)
        return cfg, open_database(cfg)
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@db_app.command("migrate")
def migrate_command(config: Path = _CONFIG, exporter: str | None = _EXPORTER, dsn: str | None = _DSN) -> None:
    """Apply pending schema migrations (safe while collectors run: advisory lock)."""
    _, database = _open(config, exporter, dsn)
    try:
        with database.connect(autocommit=True) as conn:
            applied = migrate(conn)
    finally:
        database.close()
    if applied:
        for m in applied:
            typer.echo(f"applied {m.version:04d}_{m.name}")
    else:
        typer.echo("schema is up to date")


@db_app.command("status")
def status_command(config: Path = _CONFIG, exporter: str | None = _EXPORTER, dsn: str | None = _DSN) -> None:
    """Migrations applied and pending, partitions, rows and bytes per table, quarantine counts."""
    from rich.console import Console
    from rich.table import Table

    _, database = _open(config, exporter, dsn)
    console = Console()
    try:
        with database.connect(autocommit=True) as conn:
            st = status(conn)
            migrations = Table("version", "name", "applied at", "state", title="migrations")
            for a in st.applied:
                state = "changed since applied" if a.version in st.changed else "applied"
                migrations.add_row(f"{a.version:04d}", a.name, a.applied_at.isoformat(timespec="seconds"), state)
            for m in st.pending:
                migrations.add_row(f"{m.version:04d}", m.name, "", "pending")
            console.print(migrations)
            if st.applied:
                tables = Table("table", "partitions", "oldest", "newest", "rows (est.)", "bytes", title="tables")
                rows = conn.execute(
                    """
                    SELECT t.name,
                           (SELECT count(*) FROM otel_partitions p WHERE p.parent = t.name),
                           (SELECT min(range_start) FROM otel_partitions p WHERE p.parent = t.name),
                           (SELECT max(range_end) FROM otel_partitions p WHERE p.parent = t.name),
                           (SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_class c
                              WHERE c.oid = to_regclass(t.name)
                                 OR c.oid IN (SELECT i.inhrelid FROM pg_inherits i
                                              WHERE i.inhparent = to_regclass(t.name))),
                           coalesce(pg_total_relation_size(to_regclass(t.name)), 0)
                             + (SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i
                                WHERE i.inhparent = to_regclass(t.name))
                    FROM (SELECT c.relname::text FROM pg_class c
                          WHERE c.relnamespace = current_schema()::regnamespace
                            AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                          ORDER BY 1) AS t(name)
                    """
                ).fetchall()
                for name, parts, oldest, newest, count, size in rows:
                    tables.add_row(name, str(parts), str(oldest or ""), str(newest or ""), str(count), str(size))
                console.print(tables)
                q = conn.execute("SELECT signal, action, count(*) FROM quarantine GROUP BY 1, 2 ORDER BY 1, 2")
                for signal, action, n in q.fetchall():
                    console.print(f"quarantine: {n} {signal} item(s) {action}")
    finally:
        database.close()
    if st.pending:
        raise typer.Exit(2)


@db_app.command("retention")
def retention_command(config: Path = _CONFIG, exporter: str | None = _EXPORTER, dsn: str | None = _DSN) -> None:
    """Apply the config's retention now: drop expired partitions and those further ahead than the sink writes,
    delete expired rollups."""
    cfg, database = _open(config, exporter, dsn)
    try:
        with database.connect(autocommit=True) as conn:
            result = apply_retention(conn, cfg.retention, ahead=ahead_seconds(cfg))
    finally:
        database.close()
    for name in result.dropped_partitions:
        typer.echo(f"dropped partition {name}")
    typer.echo(
        f"{len(result.dropped_partitions)} partition(s) dropped, {result.deleted_rollup_rows} rollup row(s)"
        f" and {result.deleted_quarantine_rows} quarantine row(s) deleted"
    )


@db_app.command("dsn")
def dsn_command(config: Path = _CONFIG, exporter: str | None = _EXPORTER) -> None:
    """Print the database URL (for psql, Grafana, scripts). An embedded server stays up only while some
    process uses it (e.g. a running collector); this command alone starts and stops it again."""
    _, database = _open(config, exporter, None)
    typer.echo(database.dsn)


@db_app.command("psql")
def psql_command(config: Path = _CONFIG, exporter: str | None = _EXPORTER, dsn: str | None = _DSN) -> None:
    """Open psql on the sink database (the pgserver wheel's psql, else the one on PATH)."""
    _, database = _open(config, exporter, dsn)
    psql = "psql"
    try:
        from pgserver._commands import POSTGRES_BIN_PATH

        candidate = Path(POSTGRES_BIN_PATH) / "psql"
        if candidate.exists():
            psql = str(candidate)
    except ImportError:
        pass
    try:
        code = subprocess.call([psql, database.dsn], env=os.environ.copy())
    finally:
        database.close()
    raise typer.Exit(code)
