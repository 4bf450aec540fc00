"""The analytics dashboard's SQL runs on the real sink schema (every migration applied), returning the columns
its panels use. Grafana macros are replaced by what Grafana expands them to."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest

from collector.exporters.postgres import schema

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "analytics.json"


@pytest.fixture(scope="module")
def dsn(pg_server_dsn: str) -> str:
    return pg_server_dsn


def _expand(sql: str) -> str:
    # $__timeFilter(col) -> col BETWEEN <from> AND <to>, as Grafana's PostgreSQL data source expands it.
    return re.sub(r"\$__timeFilter\((\w+)\)", r"\1 BETWEEN now() - interval '7 days' AND now()", sql)


def test_every_analytics_panel_query_runs_on_the_sink_schema(dsn: str) -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS grafana_sql_test")
        conn.execute("SET search_path TO grafana_sql_test")
        schema.migrate(conn)
        for panel in panels:
            for target in panel["targets"]:
                cursor = conn.execute(_expand(target["rawSql"]))  # raises on any schema mismatch
                columns = [c.name for c in cursor.description or []]
                assert columns, panel["title"]
                if target.get("format") == "time_series":
                    assert columns[:1] == ["time"] and "value" in columns, panel["title"]
        conn.execute("DROP SCHEMA grafana_sql_test CASCADE")
