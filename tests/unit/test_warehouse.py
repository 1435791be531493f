"""Write-audit-publish on DuckDB: one set per slice, nothing visible when the audit fails."""

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchscore.warehouse import MIGRATIONS, AuditFailed, RunRecord, ScoresSlice, open_warehouse, quoted

DAY = date(2026, 11, 21)


def scores_file(folder: Path, keys, scores, version=1, run_date=DAY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    n = len(keys)
    pq.write_table(
        pa.table(
            {
                "customer_id": pa.array(keys, pa.int64()),
                "score": pa.array(scores, pa.float64()),
                "model_version": pa.array([version] * n, pa.int64()),
                "run_date": pa.array([run_date] * n, pa.date32()),
            }
        ),
        folder / "part-0.parquet",
    )
    return folder


def target(run_id="run-1", version=1, day=DAY) -> ScoresSlice:
    return ScoresSlice("churn", "scores_churn", "customer_id", day, "churn_xgb", version, run_id)


@pytest.fixture
def warehouse(tmp_path):
    return open_warehouse(f"duckdb://{tmp_path / 'w.duckdb'}")


def test_publish_is_idempotent_per_slice(warehouse, tmp_path):
    path = scores_file(tmp_path / "a", [1, 2, 3], [0.1, 0.5, 0.9])
    warehouse.publish_scores(target(), path, expected_rows=3)
    result = warehouse.publish_scores(target("run-2"), path, expected_rows=3)
    assert result["replaced_rows"] == 3
    rows = warehouse.query("SELECT customer_id, score, run_id, model_version FROM scores_churn ORDER BY 1")
    assert rows == [(1, 0.1, "run-2", 1), (2, 0.5, "run-2", 1), (3, 0.9, "run-2", 1)]
    other_day = scores_file(tmp_path / "b", [1, 2], [0.2, 0.3], run_date=date(2026, 11, 22))
    warehouse.publish_scores(target(day=date(2026, 11, 22)), other_day, expected_rows=2)
    assert warehouse.query("SELECT run_date, count(*) FROM scores_churn GROUP BY 1 ORDER BY 1") == [
        (DAY, 3),
        (date(2026, 11, 22), 2),
    ]
    latest = warehouse.query("SELECT customer_id, score FROM latest_scores_churn ORDER BY 1")
    assert latest == [(1, 0.2), (2, 0.3), (3, 0.9)]


@pytest.mark.parametrize(
    ("keys", "scores", "expected_rows", "version", "message"),
    [
        ([1, 2, 3], [0.1, 0.2, 0.3], 4, 1, "row count 3 != features partition's 4"),
        ([1, 1, 3], [0.1, 0.2, 0.3], 3, 1, "1 duplicate keys"),
        ([1, 2, 3], [0.1, 1.2, -0.1], 3, 1, "2 scores outside [0, 1] or NaN"),
        ([1, 2, 3], [0.1, float("nan"), 0.3], 3, 1, "1 scores outside [0, 1] or NaN"),
        ([1, 2, 3], [0.1, None, 0.3], 3, 1, "1 null scores"),
        ([1, 2, 3], [0.1, 0.2, 0.3], 3, 2, "3 rows not scored by the pinned model v1"),
    ],
)
def test_audit_failure_publishes_nothing(warehouse, tmp_path, keys, scores, expected_rows, version, message):
    good = scores_file(tmp_path / "good", [1, 2, 3], [0.4, 0.4, 0.4])
    warehouse.publish_scores(target(), good, expected_rows=3)
    bad = scores_file(tmp_path / "bad", keys, scores, version=version)
    with pytest.raises(AuditFailed) as err:
        warehouse.publish_scores(target("run-bad"), bad, expected_rows=expected_rows)
    assert message in str(err.value)
    assert "nothing was published" in str(err.value)
    assert warehouse.query("SELECT customer_id, score, run_id FROM scores_churn ORDER BY 1") == [
        (1, 0.4, "run-1"),
        (2, 0.4, "run-1"),
        (3, 0.4, "run-1"),
    ]


def test_runs_drift_and_events_are_recorded(warehouse):
    warehouse.record_run(RunRecord("r", 1, "churn", DAY, "churn_xgb", 1, "failed", error="boom"))
    warehouse.record_run(
        RunRecord(
            "r", 2, "churn", DAY, "churn_xgb", 1, "published", 10, 10, "abc", {"score": 2.0, "publish": 0.5}
        )
    )
    runs = warehouse.query(
        "SELECT try_number, status, rows_per_s, error FROM scoring_runs ORDER BY try_number"
    )
    assert runs == [(1, "failed", None, "boom"), (2, "published", 4.0, None)]
    metric = {"feature": "age", "method": "psi", "statistic": 0.3, "threshold": 0.2, "drifted": True}
    for _ in range(2):
        warehouse.replace_drift_metrics("churn", DAY, 1, [metric])
        warehouse.record_event("churn", DAY, "churn_xgb", 1, "drift_gate", "pass", {"x": 1}, "r")
    assert warehouse.query("SELECT count(*) FROM drift_metrics") == [(1,)]
    assert warehouse.query("SELECT decision FROM model_events") == [("pass",)]
    assert warehouse.query("SELECT max(version) FROM schema_migrations") == [(MIGRATIONS[-1][0],)]


def test_identifiers_are_validated_not_escaped():
    assert quoted("scores_churn") == '"scores_churn"'
    for bad in ['scores"; DROP TABLE x;--', "Scores", "1abc", "a b", ""]:
        with pytest.raises(ValueError, match="invalid SQL identifier"):
            quoted(bad)


def test_numpy_scores_round_trip(warehouse, tmp_path):
    keys = np.arange(1000)
    path = scores_file(tmp_path / "n", keys, np.linspace(0, 1, 1000))
    assert warehouse.publish_scores(target(), path, expected_rows=1000)["rows"] == 1000
    assert warehouse.query(
        "SELECT min(score), max(score), count(DISTINCT customer_id) FROM scores_churn"
    ) == [(0.0, 1.0, 1000)]


def test_migration_2_keeps_existing_drift_metrics_and_adds_segments(tmp_path):
    import duckdb

    import batchscore.warehouse as wh

    url = f"duckdb://{tmp_path / 'old.duckdb'}"
    old = open_warehouse(url)
    saved = wh.MIGRATIONS[:]
    wh.MIGRATIONS[:] = saved[:1]
    try:
        old.migrate()
        with duckdb.connect(str(tmp_path / "old.duckdb")) as con:
            con.execute(
                "INSERT INTO drift_metrics VALUES ('churn', DATE '2026-11-21', 1, 'age', 'psi', 0.3, 0.2, true)"
            )
    finally:
        wh.MIGRATIONS[:] = saved
    assert old.migrate() == [2]
    assert old.query("SELECT segment, feature, statistic FROM drift_metrics") == [("all", "age", 0.3)]
    old.replace_drift_metrics(
        "churn",
        DAY,
        1,
        [
            {"feature": "age", "method": "ks", "statistic": 0.01, "threshold": 0.05, "drifted": True},
            {
                "segment": "plan_tier=2",
                "feature": "age",
                "method": "ks",
                "statistic": 0.5,
                "threshold": 0.05,
                "drifted": False,
            },
        ],
    )
    assert old.query("SELECT segment, method, drifted FROM drift_metrics ORDER BY segment") == [
        ("all", "ks", True),
        ("plan_tier=2", "ks", False),
    ]
    old.record_run(
        RunRecord("r", 1, "churn", DAY, "churn_xgb", 1, "published", model_source="alias:champion@2026-11-21")
    )
    assert old.query("SELECT model_source FROM scoring_runs") == [("alias:champion@2026-11-21",)]
