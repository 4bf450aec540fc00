"""The report commands through Typer's CliRunner against the loaded sink."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from collector.analytics.alerts import AlertStore, Firing
from collector.cli import app
from tests.collector.analytics import analytics_data
from tests.collector.analytics.analytics_data import Loaded

END = analytics_data.END
RAW = ["--since", (END - timedelta(hours=12)).isoformat(), "--until", END.isoformat()]
FULL = ["--since", (END - timedelta(days=10)).isoformat(), "--until", END.isoformat()]
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_report_json_matches_numpy(dataset: Loaded) -> None:
    d = dataset.data
    code, out, _ = run("report", "--dsn", dataset.dsn, *RAW, "--service", "search", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    m = d.mask(END - timedelta(hours=12), END) & (d.service == "search")
    assert len(rows) == 1 and rows[0]["calls"] == m.sum() and rows[0]["exact"] is True
    assert rows[0]["p95_ms"] == pytest.approx(np.percentile(d.duration_ms[m], 95), rel=1e-9)


def test_report_table_and_other_groupings(dataset: Loaded) -> None:
    code, out, _ = run("report", "--dsn", dataset.dsn, *FULL)
    assert code == 0 and "checkout.pay" in out and "p95_ms" in out
    for by, expected in (("agent", "planner"), ("role", "worker"), ("user", "active users: 6"), ("hour", "23")):
        code, out, err = run("report", "--dsn", dataset.dsn, *RAW, "--by", by)
        assert code == 0 and expected in out, (by, out, err)
    code, _, err = run("report", "--dsn", dataset.dsn, *RAW, "--by", "planet")
    assert code == 2 and "--by" in err


def test_unknown_service_lists_close_names_and_exits_2(dataset: Loaded) -> None:
    code, _, err = run("report", "--dsn", dataset.dsn, *RAW, "--service", "chekout")
    assert code == 2
    assert "unknown service 'chekout'" in err and "checkout" in err
    code, _, err = run("stats", "--dsn", dataset.dsn, *RAW, "--service", "checkout", "--operation", "checkout.py")
    assert code == 2 and "checkout.pay" in err


def test_empty_window_says_no_data_and_exits_0(dataset: Loaded) -> None:
    empty = ["--since", "2020-01-01", "--until", "2020-01-02"]
    for command in ("report", "stats", "costs", "outliers", "percentiles", "trends"):
        code, out, _ = run(command, "--dsn", dataset.dsn, *empty)
        assert code == 0 and "no data" in out, command
    code, out, err = run("report", "--dsn", dataset.dsn, *empty, "--format", "json")
    assert code == 0 and json.loads(out) == [] and "no data" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday-ish"], "ISO 8601"),
        (["--hours", "5", "--since", "2d"], "exclusive"),
        (["--hours", "-1"], "--hours must be > 0"),
        (["--since", "2026-11-10", "--until", "2026-11-01"], "must be after"),
        (["--format", "xml"], "--format"),
    ],
)
def test_bad_arguments_exit_2(dataset: Loaded, args: list[str], message: str) -> None:
    code, _, err = run("report", "--dsn", dataset.dsn, *args)
    assert code == 2 and message in err


def test_costs_csv_to_file_and_projection(dataset: Loaded, tmp_path: Path) -> None:
    d = dataset.data
    target = tmp_path / "costs.csv"
    code, _, err = run("costs", "--dsn", dataset.dsn, *FULL, "--by", "provider", "-f", "csv", "-o", str(target))
    assert code == 0 and "wrote" in err
    rows = list(csv.DictReader(target.open()))
    assert {r["key"]: float(r["cost_usd"]) for r in rows} == pytest.approx(
        {p or "(none)": d.cost[d.provider == p].sum() for p in set(d.provider)}, rel=1e-9
    )
    code, out, _ = run("costs", "--dsn", dataset.dsn, "--correlation-id", str(d.correlation[5]), "-f", "json")
    assert code == 0 and json.loads(out)["spans"] == (d.correlation == d.correlation[5]).sum()
    code, out, _ = run("costs", "--dsn", dataset.dsn, "--projection", "-f", "json")
    assert code == 0 and "projected_month_usd" in json.loads(out)


def test_trends_outliers_percentiles_insights(dataset: Loaded) -> None:
    code, out, _ = run(
        "trends", "--dsn", dataset.dsn, *FULL, "--operation", "search.query", "--metric", "p95_ms", "-f", "json"
    )
    assert code == 0 and [t["verdict"] for t in json.loads(out)] == ["degrading"]
    code, out, _ = run("outliers", "--dsn", dataset.dsn, *FULL, "-z", "4", "-f", "json", "--limit", "3")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 3 and all(abs(r["z_score"]) >= 4 and len(r["trace_id"]) == 32 for r in rows)
    code, out, _ = run("percentiles", "--dsn", dataset.dsn, *FULL, "--field", "cost", "-f", "json")
    assert code == 0 and json.loads(out)["exact"] is True
    code, _, err = run("percentiles", "--dsn", dataset.dsn, *FULL, "--field", "colour")
    assert code == 2 and "field" in err
    code, out, _ = run(
        "insights", "--dsn", dataset.dsn, *FULL, "--minutes-saved", "10", "--hourly-rate", "60", "-f", "json"
    )
    body = json.loads(out)
    assert code == 0 and {i["kind"] for i in body["insights"]} >= {"fastest_agent", "peak_hour"}
    successes = int((~dataset.data.error).sum())
    assert body["business_value"]["tasks"] == successes
    assert body["business_value"]["savings_usd"] == pytest.approx(successes * 10 / 60 * 60)
    code, out, _ = run("insights", "--dsn", dataset.dsn, *FULL)
    assert code == 0 and "fastest_agent" in out


def test_export_streams_spans(dataset: Loaded, tmp_path: Path) -> None:
    target = tmp_path / "spans.csv"
    code, _, err = run("export", "--dsn", dataset.dsn, *RAW, "--service", "agents", "-o", str(target))
    m = dataset.data.mask(END - timedelta(hours=12), END) & (dataset.data.service == "agents")
    rows = list(csv.DictReader(target.open()))
    assert code == 0 and len(rows) == m.sum() and {r["service_name"] for r in rows} == {"agents"}
    assert f"wrote {m.sum()} spans" in err
    code, out, _ = run("export", "--dsn", dataset.dsn, *RAW, "-f", "json", "--limit", "2")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 2 and len(lines[0]["trace_id"]) == 32


def test_budgets_and_alerts_commands(pg_dsn: str, tmp_path: Path) -> None:
    assert run("budgets", "set", "agent", "planner", "25", "--period", "week", "--dsn", pg_dsn)[0] == 0
    code, out, _ = run("budgets", "list", "--dsn", pg_dsn, "-f", "json")
    assert code == 0 and json.loads(out)[0]["amount_usd"] == 25.0 and json.loads(out)[0]["status"] == "ok"
    code, _, err = run("budgets", "set", "team", "x", "1", "--dsn", pg_dsn)
    assert code == 2 and "scope" in err
    assert run("budgets", "delete", "agent", "planner", "--period", "week", "--dsn", pg_dsn)[0] == 0
    assert run("budgets", "delete", "agent", "planner", "--period", "week", "--dsn", pg_dsn)[0] == 1
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        (alert,), _ = AlertStore(conn).apply(
            [Firing("slow", "warning", "service=a", "avg_ms", 9.0, 5.0, "m")], ["slow"]
        )
    code, out, _ = run("alerts", "list", "--dsn", pg_dsn, "--status", "active", "-f", "json")
    assert code == 0 and [a["id"] for a in json.loads(out)] == [alert.id]
    assert run("alerts", "ack", str(alert.id), "--dsn", pg_dsn, "--by", "me")[0] == 0
    assert run("alerts", "ack", str(alert.id), "--dsn", pg_dsn)[0] == 1
    assert run("alerts", "resolve", str(alert.id), "--dsn", pg_dsn)[0] == 0
    assert run("alerts", "resolve", str(alert.id), "--dsn", pg_dsn)[0] == 1
    # --config: the database of the postgres exporter in a collector config file.
    config = tmp_path / "otel-collector.yaml"
    config.write_text(f"exporters:\n  postgres:\n    dsn: {pg_dsn}\n")
    code, out, _ = run("alerts", "list", "--config", str(config), "-f", "json")
    assert code == 0 and json.loads(out)[0]["status"] == "resolved"
    code, out, _ = run("summary", "--config", str(config), "-f", "json")
    assert code == 0 and json.loads(out)["summary"]["status"] == "no_data"
    code, _, err = run("summary", "--config", str(tmp_path / "missing.yaml"))
    assert code == 2 and "--dsn" in err


def test_exact_reads_raw_spans_for_long_windows(dataset: Loaded) -> None:
    d = dataset.data
    code, out, _ = run("report", "--dsn", dataset.dsn, *FULL, "--operation", "checkout.pay", "--exact", "-f", "json")
    (row,) = json.loads(out)
    m = d.operation == "checkout.pay"
    assert code == 0 and row["exact"] is True
    assert row["p95_ms"] == pytest.approx(np.percentile(d.duration_ms[m], 95), rel=1e-9)
    code, out, _ = run("percentiles", "--dsn", dataset.dsn, *FULL, "--exact", "-f", "json")
    assert code == 0 and json.loads(out)["p99"] == pytest.approx(np.percentile(d.duration_ms, 99), rel=1e-9)
