"""Write-audit-publish on both warehouses: one set per slice, nothing visible when the audit fails."""

from __future__ import annotations

import threading
from datetime import date

import numpy as np
import pyarrow as pa
import pytest

from batchscore.storage.warehouse import (
    MIGRATIONS,
    AuditFailed,
    InvalidIdentifier,
    RunRecord,
    ScoresSlice,
    audit_scores,
    open_warehouse,
    quoted,
)
from batchscore.storage.warehouse.contract import duplicate_keys
from batchscore.storage.warehouse.duckdb.tables import SharedScoresTable
from batchscore.storage.warehouse.postgres.binary import key_order, key_score_rows
from tests.warehouse.slices import DAY, scores_file, target

NEXT_DAY = date(2026, 11, 22)


def test_publish_is_idempotent_per_slice(warehouse, tmp_path):
    path = scores_file(tmp_path / "a", [1, 2, 3], [0.1, 0.5, 0.9])
    assert warehouse.publish_scores(target(), path, expected_rows=3).replaced_rows == 0
    result = warehouse.publish_scores(target("run-2"), path, expected_rows=3)
    assert result.replaced_rows == 3
    rows = warehouse.query("SELECT customer_id, score, run_id, model_version FROM scores_churn ORDER BY 1")
    assert rows == [(1, 0.1, "run-2", 1), (2, 0.5, "run-2", 1), (3, 0.9, "run-2", 1)]
    other_day = scores_file(tmp_path / "b", [1, 2], [0.2, 0.3], run_date=NEXT_DAY)
    warehouse.publish_scores(target(day=NEXT_DAY), other_day, expected_rows=2)
    other_version = scores_file(tmp_path / "c", [1], [0.7], version=2, run_date=NEXT_DAY)
    warehouse.publish_scores(target(version=2, day=NEXT_DAY), other_version, expected_rows=1)
    assert warehouse.query(
        "SELECT run_date, model_version, count(*) FROM scores_churn GROUP BY 1, 2 ORDER BY 1, 2"
    ) == [(DAY, 1, 3), (NEXT_DAY, 1, 2), (NEXT_DAY, 2, 1)]
    latest = warehouse.query("SELECT customer_id, score, model_version FROM latest_scores_churn ORDER BY 1")
    assert latest == [(1, 0.7, 2), (2, 0.3, 1), (3, 0.9, 1)]
    by_day = warehouse.query("SELECT run_date, model_version, rows, p50 FROM scores_churn_by_day")
    assert by_day == [(DAY, 1, 3, 0.5), (NEXT_DAY, 1, 2, 0.25), (NEXT_DAY, 2, 1, 0.7)]
    assert warehouse.query(
        "SELECT run_date, model_version, run_id, row_count FROM published_slices ORDER BY 1, 2"
    ) == [(DAY, 1, "run-2", 3), (NEXT_DAY, 1, "run-1", 2), (NEXT_DAY, 2, "run-1", 1)]


@pytest.mark.parametrize(
    ("keys", "scores", "expected_rows", "version", "message"),
    [
        ([1, 2, 3], [0.1, 0.2, 0.3], 4, 1, "row count 3 != features partition's 4"),
        ([1, 1, 3], [0.1, 0.2, 0.3], 3, 1, "1 duplicate keys"),
        ([1, 2, 3], [0.1, 1.2, -0.1], 3, 1, "2 scores outside [0, 1] or NaN"),
        ([1, 2, 3], [0.1, float("nan"), 0.3], 3, 1, "1 scores outside [0, 1] or NaN"),
        ([1, 2, 3], [0.1, None, 0.3], 3, 1, "1 null scores"),
        ([1, None, 3], [0.1, 0.2, 0.3], 3, 1, "1 null keys"),
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
    assert "churn 2026-11-21 model v1 failed the audit, nothing was published" in str(err.value)
    assert warehouse.query("SELECT customer_id, score, run_id FROM scores_churn ORDER BY 1") == [
        (1, 0.4, "run-1"),
        (2, 0.4, "run-1"),
        (3, 0.4, "run-1"),
    ]
    assert warehouse.query("SELECT run_id FROM published_slices") == [("run-1",)]


def test_scores_for_another_day_are_refused(warehouse, tmp_path):
    wrong_day = scores_file(tmp_path / "w", [1, 2], [0.1, 0.2], run_date=NEXT_DAY)
    with pytest.raises(AuditFailed, match="2 rows for another run date than 2026-11-21"):
        warehouse.publish_scores(target(), wrong_day, expected_rows=2)
    assert warehouse.query("SELECT count(*) FROM scores_churn") == [(0,)]


def test_runs_drift_and_events_are_recorded(warehouse):
    warehouse.record_run(RunRecord("r", 1, "churn", DAY, "churn_xgb", 1, "failed", error="boom"))
    warehouse.record_run(
        RunRecord(
            "r",
            2,
            "churn",
            DAY,
            "churn_xgb",
            1,
            "published",
            rows_in=10,
            rows_out=10,
            input_checksum="abc",
            stage_seconds={"score": 2.0, "publish": 0.5},
            cpu_seconds=0.002,
        )
    )
    runs = warehouse.query(
        "SELECT try_number, status, rows_per_s, cpu_seconds, cpu_s_per_million_rows, error "
        "FROM scoring_runs ORDER BY try_number"
    )
    assert runs == [(1, "failed", None, None, None, "boom"), (2, "published", 4.0, 0.002, 200.0, None)]
    assert warehouse.query("SELECT try_number, status, cpu_s_per_million_rows FROM run_history") in (
        [(2, "published", 200.0), (1, "failed", None)],
        [(1, "failed", None), (2, "published", 200.0)],
    )
    metric = {"feature": "age", "method": "psi", "statistic": 0.3, "threshold": 0.2, "drifted": True}
    for decision in ("pass", "retrain_recommended"):
        warehouse.replace_drift_metrics("churn", DAY, 1, [metric])
        warehouse.record_event("churn", DAY, "churn_xgb", 1, "drift_gate", decision, {"x": 1}, "r")
    assert warehouse.query("SELECT feature, statistic, drifted FROM drift_metrics") == [("age", 0.3, True)]
    assert warehouse.query("SELECT decision FROM model_events") == [("retrain_recommended",)]
    assert warehouse.query("SELECT version, name FROM schema_migrations ORDER BY 1") == [
        (1, "runs, drift metrics and model events"),
        (2, "what a run costs, and which run published each slice"),
        (3, "drift metrics per segment; how each run's model version was chosen"),
        (4, "each run's deadline rule; the pipeline_freshness view"),
        (5, "model performance (realized and estimated) and score stability"),
        (7, "what each published slice was computed from (no-op reruns)"),
        (8, "versioned output contracts: the context columns each scores table publishes"),
    ]
    assert warehouse.migrate() == []


def test_migration_3_keeps_existing_drift_metrics_and_adds_segments(warehouse_url, monkeypatch):
    """A warehouse created before segments keeps its drift metrics when migration 3 runs."""
    old = open_warehouse(warehouse_url)
    for module in (
        "batchscore.storage.warehouse.duckdb.store",
        "batchscore.storage.warehouse.postgres.store",
    ):
        monkeypatch.setattr(f"{module}.MIGRATIONS", MIGRATIONS[:2])
    assert old.migrate() == [1, 2]
    with old.connect() as con:
        con.execute(
            "INSERT INTO drift_metrics VALUES ('churn', DATE '2026-11-21', 1, 'age', 'psi', 0.3, 0.2, true)"
        )
    monkeypatch.undo()
    new = open_warehouse(warehouse_url)
    assert new.migrate() == [3, 4, 5, 7, 8]
    assert new.query("SELECT segment, feature, statistic FROM drift_metrics") == [("all", "age", 0.3)]
    segment = {"segment": "contract=monthly", "feature": "age", "method": "ks"}
    new.replace_drift_metrics(
        "churn",
        DAY,
        1,
        [
            {"feature": "age", "method": "ks", "statistic": 0.01, "threshold": 0.05, "drifted": True},
            {**segment, "statistic": 0.5, "threshold": 0.05, "drifted": False},
        ],
    )
    assert new.query("SELECT segment, method, drifted FROM drift_metrics ORDER BY segment") == [
        ("all", "ks", True),
        ("contract=monthly", "ks", False),
    ]
    new.record_run(
        RunRecord("r", 1, "churn", DAY, "churn_xgb", 1, "published", model_source="alias:champion@2026-11-21")
    )
    assert new.query("SELECT model_source FROM scoring_runs") == [("alias:champion@2026-11-21",)]


def test_numpy_scores_round_trip(warehouse, tmp_path):
    keys = np.random.default_rng(1).permutation(5000) - 2500
    path = scores_file(tmp_path / "n", keys, np.linspace(0, 1, 5000))
    assert warehouse.publish_scores(target(), path, expected_rows=5000).rows == 5000
    assert warehouse.query(
        "SELECT min(score), max(score), count(DISTINCT customer_id), min(customer_id), sum(customer_id) "
        "FROM scores_churn"
    ) == [(0.0, 1.0, 5000, -2500, int(keys.sum()))]


def test_publishes_of_different_days_run_concurrently_and_the_same_slice_serializes(warehouse, tmp_path):
    days = [date(2026, 11, d) for d in (18, 19, 20, 21)]
    paths = {
        d: scores_file(tmp_path / str(d), list(range(200)), [d.day / 100] * 200, run_date=d) for d in days
    }
    same = [scores_file(tmp_path / f"same{i}", list(range(300)), [i / 10] * 300) for i in range(4)]
    jobs = [(target(f"day-{d}", day=d), paths[d], 200) for d in days[:3]]
    jobs += [(target(f"same-{i}"), same[i], 300) for i in range(4)]
    errors: list[BaseException] = []

    def publish(job):
        try:
            warehouse.publish_scores(*job)
        except BaseException as exc:  # collected and re-raised by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    counts = warehouse.query(
        "SELECT run_date, count(*), count(DISTINCT run_id) FROM scores_churn GROUP BY 1 ORDER BY 1"
    )
    assert counts == [(days[0], 200, 1), (days[1], 200, 1), (days[2], 200, 1), (DAY, 300, 1)]
    winner = warehouse.query("SELECT run_id FROM published_slices WHERE run_date = ?", [DAY])[0][0]
    assert warehouse.query("SELECT DISTINCT run_id, score FROM scores_churn WHERE run_date = ?", [DAY]) == [
        (winner, int(winner[-1]) / 10)
    ]


def test_audit_is_a_pure_function_of_the_scores():
    scores = pa.table(
        {
            "customer_id": pa.array([1, 2, 2, None], pa.int64()),
            "score": pa.array([0.5, float("nan"), 0.2, None]),
            "model_version": pa.array([1, 1, 3, 1]),
            "run_date": pa.array([DAY, DAY, DAY, date(2026, 1, 1)], pa.date32()),
        }
    )
    assert audit_scores(scores, target(), expected_rows=5) == [
        "row count 4 != features partition's 5",
        "1 null keys",
        "1 duplicate keys",
        "1 null scores",
        "1 scores outside [0, 1] or NaN",
        "1 rows not scored by the pinned model v1",
        "1 rows for another run date than 2026-11-21",
    ]
    assert audit_scores(scores.slice(0, 1), target(), expected_rows=1) == []


def test_binary_copy_stream_layout():
    stream = bytes(key_score_rows(np.array([1, -2], np.int64), np.array([0.25, 1.0])))
    row = (2).to_bytes(2, "big") + (8).to_bytes(4, "big") + (1).to_bytes(8, "big", signed=True)
    row += (8).to_bytes(4, "big") + bytes.fromhex("3fd0000000000000")
    assert stream.startswith(b"PGCOPY\n\xff\r\n\x00" + bytes(8) + row)
    assert stream.endswith(
        bytes.fromhex("fffffffffffffffe")
        + (8).to_bytes(4, "big")
        + bytes.fromhex("3ff0000000000000")
        + b"\xff\xff"
    )
    assert len(stream) == 19 + 2 * 26 + 2


@pytest.mark.parametrize("bad", ['scores"; DROP TABLE x;--', "Scores", "1abc", "a b", "", "x" * 64])
def test_identifiers_are_validated_not_escaped(bad):
    assert quoted("scores_churn") == '"scores_churn"'
    with pytest.raises(InvalidIdentifier, match="invalid table name"):
        ScoresSlice("churn", bad, "customer_id", DAY, "m", 1, "r")
    with pytest.raises(InvalidIdentifier, match="invalid SQL identifier"):
        quoted(bad)


@pytest.mark.integration
def test_postgres_schema_name_from_the_url_is_validated(pg_database):
    with pytest.raises(InvalidIdentifier, match="invalid schema name 'x\"; DROP TABLE y;--'"):
        open_warehouse(f'{pg_database}?schema=x"; DROP TABLE y;--')


def test_cli_migrates_and_refuses_roles_on_duckdb(tmp_path, monkeypatch, capsys):
    from batchscore.cli import main

    monkeypatch.setenv("BATCHSCORE_WAREHOUSE_URL", f"duckdb://{tmp_path / 'cli.duckdb'}")
    assert main(["warehouse", "migrate"]) == 0
    assert "applied migrations [1, 2, 3, 4, 5, 7, 8]" in capsys.readouterr().out
    assert main(["warehouse", "migrate"]) == 0
    assert "schema is up to date" in capsys.readouterr().out
    assert main(["warehouse", "init-roles"]) == 2
    assert "needs a postgresql:// warehouse URL" in capsys.readouterr().err


@pytest.mark.parametrize(
    "keys",
    [
        [5, 3, 4, 1, 2],  # dense: placed by a scatter over the key range
        [-7, 10**15, 3, -(2**62), 0],  # sparse: argsorted
        [4, 2, 4, 1, 3],  # a duplicate: the scatter would lose a row, so argsort
        [],
    ],
)
def test_key_order_sorts_every_row(keys):
    values = np.array(keys, np.int64)
    order = key_order(values)
    assert sorted(order.tolist()) == list(range(len(keys)))
    assert values[order].tolist() == sorted(keys)


@pytest.mark.parametrize(
    ("keys", "duplicates"),
    [
        ([3, 1, 2, 3, 3, None], 2),  # dense keys: counted on a byte map of the range
        ([10**15, -(2**62), 10**15, 7], 1),  # sparse keys: counted on sorted keys
        ([1], 0),
        ([], 0),
    ],
)
def test_duplicate_keys_on_dense_and_sparse_ranges(keys, duplicates):
    assert duplicate_keys(pa.array(keys, pa.int64())) == duplicates


def test_duckdb_converts_a_table_of_the_earlier_wide_layout(tmp_path):
    """A warehouse written before scores were stored narrow keeps every row, then publishes normally."""
    import duckdb

    path = tmp_path / "old.duckdb"
    warehouse = open_warehouse(f"duckdb://{path}")
    warehouse.migrate()
    with duckdb.connect(str(path)) as con:  # what earlier versions created and wrote
        con.execute(
            """CREATE TABLE scores_churn (customer_id BIGINT NOT NULL, run_date DATE NOT NULL,
               pipeline VARCHAR NOT NULL, model_name VARCHAR NOT NULL, model_version INTEGER NOT NULL,
               score DOUBLE PRECISION NOT NULL, run_id VARCHAR NOT NULL)"""
        )
        con.execute(
            "INSERT INTO scores_churn VALUES (1, DATE '2026-11-20', 'churn', 'churn_xgb', 1, 0.1, 'old-a'), "
            "(2, DATE '2026-11-20', 'churn', 'churn_xgb', 1, 0.2, 'old-a'), "
            "(1, DATE '2026-11-21', 'churn', 'churn_xgb', 1, 0.3, 'old-b')"
        )
        # the 11-21 slice was recorded in published_slices, the 11-20 slice predates that table
        con.execute(
            "INSERT INTO published_slices VALUES "
            "('scores_churn', 'churn', DATE '2026-11-21', 1, 'churn_xgb', 'old-b', 1, NULL, now(), NULL, NULL)"
        )
    warehouse.publish_scores(target("run-new"), scores_file(tmp_path / "new", [1, 2], [0.5, 0.6]), 2)
    assert warehouse.query(
        "SELECT customer_id, run_date, pipeline, model_name, model_version, score, run_id "
        "FROM scores_churn ORDER BY run_date, customer_id"
    ) == [
        (1, date(2026, 11, 20), "churn", "churn_xgb", 1, 0.1, "old-a"),
        (2, date(2026, 11, 20), "churn", "churn_xgb", 1, 0.2, "old-a"),
        (1, DAY, "churn", "churn_xgb", 1, 0.5, "run-new"),
        (2, DAY, "churn", "churn_xgb", 1, 0.6, "run-new"),
    ]
    assert warehouse.query("SELECT run_date, run_id, row_count FROM published_slices ORDER BY 1") == [
        (date(2026, 11, 20), "old-a", 2),
        (DAY, "run-new", 2),
    ]
    assert warehouse.query(
        "SELECT table_schema, table_type FROM information_schema.tables WHERE table_name = 'scores_churn' "
        "ORDER BY 1"
    ) == [("main", "VIEW"), ("slice_rows", "BASE TABLE")]


def test_duckdb_refuses_a_second_pipeline_in_one_scores_table(tmp_path):
    warehouse = open_warehouse(f"duckdb://{tmp_path / 'w.duckdb'}")
    warehouse.publish_scores(target(), scores_file(tmp_path / "a", [1, 2], [0.1, 0.2]), expected_rows=2)
    other = ScoresSlice("upsell", "scores_churn", "customer_id", DAY, "upsell_xgb", 1, "run-u")
    with pytest.raises(SharedScoresTable, match="already holds scores of pipeline 'churn'"):
        warehouse.publish_scores(other, scores_file(tmp_path / "b", [1], [0.9]), expected_rows=1)
    assert warehouse.query("SELECT pipeline, count(*) FROM scores_churn GROUP BY 1") == [("churn", 2)]
