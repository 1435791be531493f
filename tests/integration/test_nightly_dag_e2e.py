"""End to end: seed a lake, train, run the real nightly DAG through Airflow (dag.test) for two
days (the second fails in publish once, and its rerun resumes from the scores), rerun the first
(a no-op), feed it a bad partition, pin versions, and kill a run after scoring (its rerun
resumes); assert on the warehouse and the lake."""

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


def file_ids(home: Path, stage: str, day: date) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of each data file of a features or (v1) scores partition: rewritten or not."""
    folder = {"features": "features/churn", "scores": "scores/churn/model_version=1"}[stage]
    part = home / "lake" / folder / f"dt={day.isoformat()}"
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in part.glob("*.parquet")}


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
    assert "SUCCESS" in first and f"published {ROWS:,}" in first and "reused" not in first
    health = home / "lake" / "reports" / "health" / "churn" / f"dt={DAY1}" / "health.html"
    assert f"  health:     {health}" in first, "the summary links the day's health page"

    # DAY2 fails in publish, after scoring: the scores table is claimed by another pipeline.
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute(
            "INSERT INTO published_slices (scores_table, pipeline, run_date, model_version, model_name, "
            "run_id, row_count, published_at) VALUES "
            "('scores_churn', 'intruder', DATE '2000-01-01', 1, 'x', 'x', 0, now())"
        )
    failed = cli(home, "run", "--pipeline", "churn", "--date", DAY2.isoformat())
    assert failed.returncode == 1 and "publish failed: SharedScoresTable" in failed.stdout, failed.stdout
    scored = {stage: file_ids(home, stage, DAY2) for stage in ("features", "scores")}
    assert all(scored.values())
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("DELETE FROM published_slices WHERE pipeline = 'intruder'")
    # Its rerun resumes: the features and the scores are reused, untouched; publish runs.
    resumed = ok(cli(home, "run", "--pipeline", "churn", "--date", DAY2.isoformat()))
    assert "reused:     build_features, score" in resumed and f"published {ROWS:,}" in resumed
    assert {stage: file_ids(home, stage, DAY2) for stage in scored} == scored

    before = scores(home)
    untouched = {stage: file_ids(home, stage, DAY1) for stage in ("features", "scores")}
    # DAY1 again, same inputs and model version: a no-op that says so.
    again = ok(cli(home, "run", "--pipeline", "churn", "--date", DAY1.isoformat()))
    assert "already published with the same inputs and model version" in again
    assert "no-op:" in again and f"unchanged {ROWS:,}" in again
    assert {stage: file_ids(home, stage, DAY1) for stage in untouched} == untouched
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
            "SELECT count(DISTINCT feature), count(DISTINCT run_date) FROM drift_metrics "
            "WHERE method <> 'attribution'"
        ).fetchone()
        attribution = con.execute(
            "SELECT run_date, count(*) FROM drift_metrics WHERE method = 'attribution' GROUP BY 1 ORDER BY 1"
        ).fetchall()
        reasons = con.execute(
            "SELECT r.run_date, count(*), count(DISTINCT r.customer_id), min(r.rank), max(r.rank) "
            "FROM score_reasons_churn r JOIN scores_churn s USING (customer_id, run_date, model_version) "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
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
        (DAY2, "failed", None, None, 1),
        (DAY2, "published", ROWS, ROWS, 1),
        (DAY1, "unchanged", ROWS, ROWS, 1),
    ]
    assert drift == (25, 2), "24 features plus the prediction, for each day"
    raw = pq.read_table(
        home / "lake" / "raw" / "customers" / f"dt={DAY1}",
        columns=["customer_id", "region", "plan", "contract"],
    )
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        context = con.execute(
            "SELECT customer_id, region, plan, contract FROM scores_churn_v1 WHERE run_date = ? ORDER BY 1",
            [DAY1],
        ).fetchall()
    assert context == sorted(zip(*(raw.column(n).to_pylist() for n in raw.column_names), strict=True))
    assert attribution == [(DAY1, 24), (DAY2, 24)], "mean |contribution| of each feature, each day"
    assert reasons == [(d, 3 * ROWS, ROWS, 1, 3) for d in (DAY1, DAY2)], "3 reasons per scored row"
    assert events == [(DAY1, "pass"), (DAY2, "pass")]
    assert estimated == [(DAY1, 1), (DAY2, 1)], "the evaluate task estimated each day"
    assert stability == [(DAY2, DAY1, ROWS)], "DAY2 against DAY1; DAY1 has no earlier day"
    reports = home / "lake" / "reports"
    for stage in ("raw", "features", "scores"):
        assert (reports / "validation" / "churn" / f"dt={DAY1}" / stage / "report.html").is_file()
    assert (reports / "drift" / "churn" / f"dt={DAY1}" / "drift.html").stat().st_size > 10_000
    page = (reports / "health" / "churn" / f"dt={DAY2}" / "health.html").read_text()
    assert "churn · model health · 2026-11-21" in page and "3,000 rows published at" in page
    assert "<svg id='chart-drift'" in page, "the day's drift, ranked"


def test_a_bad_partition_stops_the_run_and_publishes_nothing(home):
    import pyarrow as pa

    from batchscore.examples.seed import SeedSpec, customers_snapshot, write_partition
    from batchscore.storage.lake import Lake

    table, _ = customers_snapshot(SeedSpec(rows=ROWS), BAD_DAY)
    ids = table["customer_id"].to_pylist()
    for i in range(0, 10, 2):  # 5 keys twice: 10 rows, above churn's quarantine of 0.1% (3 rows)
        ids[i + 1] = ids[i]
    table = table.set_column(0, "customer_id", pa.array(ids, pa.int64()))
    write_partition(Lake(str(home / "lake")), "customers", BAD_DAY, table)
    before = scores(home)

    result = cli(home, "run", "--pipeline", "churn", "--date", BAD_DAY.isoformat())

    assert result.returncode == 1
    assert "validate_raw failed" in result.stdout
    assert "expect_column_values_to_be_unique on customer_id: 10 unexpected" in result.stdout
    assert "10 of 3,000 rows (unique(customer_id) 10)" in result.stdout, result.stdout[-3000:]
    assert scores(home) == before
    assert not (home / "lake" / "features" / "churn" / f"dt={BAD_DAY}").exists()
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        failed = con.execute(
            "SELECT status, error FROM scoring_runs WHERE run_date = ?", [BAD_DAY]
        ).fetchall()
    assert len(failed) == 1 and failed[0][0] == "failed"
    assert "quarantine exceeded" in failed[0][1] and "customers" in failed[0][1]
    assert not (home / "lake" / "quarantine" / "churn" / f"dt={BAD_DAY}").exists()


def test_a_new_champion_and_a_pinned_backfill_keep_one_set_per_version(home):
    out = ok(cli(home, "train", "--pipeline", "churn", "--date", DAY2.isoformat(), "--promote"))
    assert "Registered churn_xgb v2 as champion" in out
    # A run for DAY2 without an override scores with the model of that day, which depends on
    # when (wall clock) v2 was promoted relative to DAY2; rescoring DAY2 with v2 is explicit.
    ok(cli(home, "run", "--pipeline", "churn", "--date", DAY2.isoformat(), "--model-version", "2"))
    # v1's DAY2 slice is published with these inputs already: --force rescores and republishes it.
    v1_scores = file_ids(home, "scores", DAY2)
    pinned = ok(
        cli(home, "run", "--pipeline", "churn", "--date", DAY2.isoformat(), "--model-version", "1", "--force")
    )
    assert "(model churn_xgb v1)" in pinned and f"published {ROWS:,}" in pinned
    assert "reused" not in pinned and "no-op" not in pinned
    assert (
        file_ids(home, "scores", DAY2).keys() == v1_scores.keys()
        and file_ids(home, "scores", DAY2) != v1_scores
    )

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


def test_a_run_killed_after_scoring_resumes_from_its_scores(home):
    """SIGKILL the whole `batchscore run` (Airflow, Spark JVM, workers) once the scores are
    committed; the rerun reuses the features and the scores, untouched, and publishes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import settings_env

    day = date(2026, 11, 19)
    marker = home / "lake" / "scores" / "churn" / "model_version=1" / f"dt={day.isoformat()}" / "_SUCCESS"
    env = {**os.environ, **settings_env(home), "AIRFLOW_HOME": str(home / "airflow")}
    command = [str(Path(sys.executable).with_name("batchscore")), "run", "--pipeline", "churn"]
    command += ["--date", day.isoformat(), "--model-version", "1"]
    run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not marker.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists() and run.poll() is None, "the run should be past scoring, not finished"
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
    assert all(r[1] != day for r in scores(home)), "killed before publishing"
    scored = {stage: file_ids(home, stage, day) for stage in ("features", "scores")}

    resumed = ok(cli(home, "run", "--pipeline", "churn", "--date", day.isoformat(), "--model-version", "1"))
    assert "SUCCESS" in resumed and f"published {ROWS:,}" in resumed
    assert "reused:     build_features, score" in resumed
    assert {stage: file_ids(home, stage, day) for stage in scored} == scored
    assert len([r for r in scores(home) if r[1] == day]) == ROWS


def test_a_backfill_runs_every_day_in_order_and_reports_a_failed_one(home):
    import pyarrow as pa

    from batchscore.examples.seed import SeedSpec, customers_snapshot, write_partition
    from batchscore.storage.lake import Lake

    runs_before = len(scores(home))
    unlanded = cli(home, "backfill", "--pipeline", "churn", "--start", "2026-11-21", "--end", "2026-11-24")
    assert unlanded.returncode == 2, unlanded.stdout
    assert "of 4 days have no complete raw/customers partition" in unlanded.stderr
    assert "2026-11-23, 2026-11-24" in unlanded.stderr and "nothing was run" in unlanded.stderr
    assert len(scores(home)) == runs_before
    # Before the DAG's start date Airflow would create a run with no task: refused, not "SUCCESS".
    early = cli(home, "backfill", "--pipeline", "churn", "--start", "2026-10-30", "--end", "2026-11-02")
    assert early.returncode == 2 and "before batchscore_churn's start date 2026-11-01" in early.stderr
    single = cli(home, "run", "--pipeline", "churn", "--date", "2026-10-31")
    assert single.returncode == 2 and "Airflow would create no task for it; nothing was run" in single.stderr

    first, bad, last = date(2026, 11, 14), date(2026, 11, 15), date(2026, 11, 16)
    table, _ = customers_snapshot(SeedSpec(rows=ROWS), bad)
    ids = table["customer_id"].to_pylist()
    ids[1::2] = ids[0::2][: len(ids[1::2])]  # every key twice: far above the quarantine's tolerance
    write_partition(
        Lake(str(home / "lake")), "customers", bad, table.set_column(0, "customer_id", pa.array(ids))
    )

    out = cli(home, "backfill", "--pipeline", "churn", "--start", str(first), "--end", str(last))

    assert out.returncode == 1, out.stdout + out.stderr[-3000:]
    lines = [line.strip() for line in out.stdout.splitlines() if line.startswith("  2026-")]
    assert [line.split()[:2] for line in lines] == [
        [str(first), "ok"],
        [str(bad), "FAILED"],
        [str(last), "ok"],
    ]
    assert f"published {ROWS:,} rows" in lines[0] and "at validate_raw" in lines[1]
    assert f"2 of 3 days succeeded, {2 * ROWS:,} rows scored in" in out.stdout
    assert f"failed: {bad}; nothing was published for them" in out.stdout
    by_day = {r[1] for r in scores(home)}
    assert {first, last} <= by_day and bad not in by_day
    assert sum(1 for r in scores(home) if r[1] in (first, last)) == 2 * ROWS
