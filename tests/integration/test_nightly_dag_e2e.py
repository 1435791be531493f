"""End to end: seed a lake, train, run the real nightly DAG through Airflow (dag.test) for two
days, rerun the first, then feed it a bad partition; assert on the warehouse and the lake."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from tests.integration.batchscore_cli import cli, ok

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DAY1, DAY2, BAD_DAY = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)
ROWS = 3000


def scores(home: Path) -> list[tuple]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT customer_id, run_date, model_version, score, run_id, model_name, pipeline "
            "FROM scores_churn ORDER BY run_date, customer_id"
        ).fetchall()


def feature_rows(home: Path, day: date) -> int:
    part = home / "lake" / "features" / "churn" / f"dt={day.isoformat()}"
    return sum(pq.read_metadata(p).num_rows for p in part.glob("*.parquet"))


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("nightly")
    ok(cli(home, "lake", "seed", "--days", "12", "--rows", str(ROWS), "--end-date", DAY2.isoformat()))
    out = ok(cli(home, "train", "--pipeline", "churn", "--date", "2026-11-17"))
    assert "Registered churn_xgb v1 as champion" in out
    return home


def test_two_days_then_a_rerun_publish_exactly_once(home):
    first = ok(cli(home, "run", "--pipeline", "churn", "--date", DAY1.isoformat()))
    assert "SUCCESS" in first and f"published {ROWS:,}" in first
    ok(cli(home, "run", "--pipeline", "churn", "--date", DAY2.isoformat()))
    before = scores(home)
    ok(cli(home, "run", "--pipeline", "churn", "--date", DAY1.isoformat()))
    after = scores(home)

    assert after == before, "rerunning a day leaves the same rows"
    for day in (DAY1, DAY2):
        day_rows = [r for r in after if r[1] == day]
        assert len(day_rows) == feature_rows(home, day) == ROWS
        assert len({(r[0], r[1], r[2]) for r in day_rows}) == len(day_rows), "no duplicate keys"
    assert all(0.0 <= r[3] <= 1.0 for r in after)
    assert {(r[2], r[5], r[6]) for r in after} == {(1, "churn_xgb", "churn")}
    assert {r[4] for r in after} == {f"manual__{d.isoformat()}T00:00:00+00:00" for d in (DAY1, DAY2)}

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        runs = con.execute(
            "SELECT run_date, status, rows_in, rows_out, model_version FROM scoring_runs ORDER BY recorded_at"
        ).fetchall()
        drift = con.execute(
            "SELECT count(DISTINCT feature), count(DISTINCT run_date) FROM drift_metrics"
        ).fetchone()
        events = con.execute(
            "SELECT run_date, decision FROM model_events WHERE event = 'drift_gate' ORDER BY run_date"
        ).fetchall()
        estimated = con.execute(
            "SELECT run_date, count(*) FROM model_performance_churn WHERE kind = 'estimated' "
            "AND metric = 'roc_auc' AND value > 0.5 AND lower < value AND value < upper GROUP BY 1 ORDER BY 1"
        ).fetchall()
        stability = con.execute(
            "SELECT run_date, previous_run_date, shared_entities FROM score_stability_churn"
        ).fetchall()
    assert runs == [
        (DAY1, "published", ROWS, ROWS, 1),
        (DAY2, "published", ROWS, ROWS, 1),
        (DAY1, "published", ROWS, ROWS, 1),
    ]
    assert drift == (25, 2), "24 features plus the prediction, for each day"
    assert events == [(DAY1, "pass"), (DAY2, "pass")]
    assert estimated == [(DAY1, 1), (DAY2, 1)], "the evaluate task estimated each day"
    assert stability == [(DAY2, DAY1, ROWS)], "DAY2 against DAY1; DAY1 has no earlier day"
    reports = home / "lake" / "reports"
    for stage in ("raw", "features", "scores"):
        assert (reports / "validation" / "churn" / f"dt={DAY1}" / stage / "report.html").is_file()
    assert (reports / "drift" / "churn" / f"dt={DAY1}" / "drift.html").stat().st_size > 10_000


def test_a_bad_partition_stops_the_run_and_publishes_nothing(home):
    import pyarrow as pa

    from batchscore.examples.seed import SeedSpec, customers_snapshot, write_partition
    from batchscore.storage.lake import Lake

    table, _ = customers_snapshot(SeedSpec(rows=ROWS), BAD_DAY)
    ids = table["customer_id"].to_pylist()
    ids[1] = ids[0]
    table = table.set_column(0, "customer_id", pa.array(ids, pa.int64()))
    write_partition(Lake(str(home / "lake")), "customers", BAD_DAY, table)
    before = scores(home)

    result = cli(home, "run", "--pipeline", "churn", "--date", BAD_DAY.isoformat())

    assert result.returncode == 1
    assert "validate_raw failed" in result.stdout
    assert "expect_column_values_to_be_unique on customer_id: 2 unexpected" in result.stdout
    assert scores(home) == before
    assert not (home / "lake" / "features" / "churn" / f"dt={BAD_DAY}").exists()
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        failed = con.execute(
            "SELECT status, error FROM scoring_runs WHERE run_date = ?", [BAD_DAY]
        ).fetchall()
    assert len(failed) == 1 and failed[0][0] == "failed"
    assert "ValidationFailed" in failed[0][1] and "customers" in failed[0][1]


def test_a_new_champion_and_a_pinned_backfill_keep_one_set_per_version(home):
    out = ok(cli(home, "train", "--pipeline", "churn", "--date", DAY2.isoformat(), "--promote"))
    assert "Registered churn_xgb v2 as champion" in out
    # A run for DAY2 without an override scores with the model of that day, which depends on
    # when (wall clock) v2 was promoted relative to DAY2; rescoring DAY2 with v2 is explicit.
    ok(cli(home, "run", "--pipeline", "churn", "--date", DAY2.isoformat(), "--model-version", "2"))
    pinned = ok(cli(home, "run", "--pipeline", "churn", "--date", DAY2.isoformat(), "--model-version", "1"))
    assert "(model churn_xgb v1)" in pinned

    day2 = [r for r in scores(home) if r[1] == DAY2]
    by_version = {v: [r for r in day2 if r[2] == v] for v in (1, 2)}
    assert len(by_version[1]) == len(by_version[2]) == ROWS, "one set per (day, model version)"
    assert len({(r[0], r[2]) for r in day2}) == 2 * ROWS
    assert [r[3] for r in by_version[1]] != [r[3] for r in by_version[2]], "v2 scores differ from v1"
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        latest_versions = con.execute(
            "SELECT model_version, count(*) FROM scoring_runs WHERE run_date = ? AND status = 'published' "
            "GROUP BY 1 ORDER BY 1",
            [DAY2],
        ).fetchall()
    assert latest_versions == [(1, 2), (2, 1)]
