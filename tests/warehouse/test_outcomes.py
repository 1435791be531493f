"""The outcome tables on both warehouses: writes replace their key exactly once, per-pipeline views."""

from __future__ import annotations

from datetime import date

import pytest

from batchscore.storage.warehouse import InvalidIdentifier
from batchscore.storage.warehouse.outcome_store import outcome_views

DAY = date(2026, 11, 18)


def metric(name: str, value: float | None, rows: int, version: int = 1, segment: str = "all") -> dict:
    return {
        "model_name": "churn_xgb",
        "model_version": version,
        "segment": segment,
        "metric": name,
        "value": value,
        "row_count": rows,
    }


def test_late_labels_replace_a_days_realized_rows_exactly_once(warehouse):
    first = [
        metric("roc_auc", 0.8, 100),
        metric("log_loss", 0.4, 100),
        metric("roc_auc", 0.7, 40, segment="s=1"),
    ]
    assert warehouse.replace_performance("churn", DAY, "champion", "realized", "run-1", first) == 0
    estimate = [{**metric("roc_auc", 0.81, 150), "lower": 0.78, "upper": 0.84}]
    warehouse.replace_performance("churn", DAY, "champion", "estimated", "run-1", estimate)
    warehouse.replace_performance(
        "churn", DAY, "shadow", "realized", "run-1", [metric("roc_auc", 0.9, 100, 2)]
    )
    warehouse.replace_performance("other", DAY, "champion", "realized", "run-1", [metric("roc_auc", 0.5, 9)])

    late = [metric("roc_auc", 0.79, 130), metric("log_loss", float("nan"), 130)]
    for run_id in ("run-2", "run-2-retry"):  # the late labels' run, then a rerun of it
        replaced = warehouse.replace_performance("churn", DAY, "champion", "realized", run_id, late)
    assert replaced == 2

    rows = warehouse.query(
        "SELECT role, kind, model_version, segment, metric, value, lower, upper, row_count, run_id "
        "FROM model_performance_churn ORDER BY role, kind, metric"
    )
    assert rows == [
        ("champion", "estimated", 1, "all", "roc_auc", 0.81, 0.78, 0.84, 150, "run-1"),
        ("champion", "realized", 1, "all", "log_loss", None, None, None, 130, "run-2-retry"),
        ("champion", "realized", 1, "all", "roc_auc", 0.79, None, None, 130, "run-2-retry"),
        ("shadow", "realized", 2, "all", "roc_auc", 0.9, None, None, 100, "run-1"),
    ]
    assert warehouse.query("SELECT pipeline, count(*) FROM model_performance GROUP BY 1 ORDER BY 1") == [
        ("churn", 4),
        ("other", 1),
    ]
    assert warehouse.query("SELECT count(*) FROM model_performance_other") == [(1,)]
    assert warehouse.replace_performance("churn", DAY, "champion", "realized", "run-3", []) == 2
    assert warehouse.query("SELECT count(*) FROM model_performance_churn WHERE kind = 'realized'") == [(1,)]
    with pytest.raises(ValueError, match="kind"):
        warehouse.replace_performance("churn", DAY, "champion", "guessed", "run-4", first)


def test_score_stability_keeps_one_row_per_day(warehouse):
    row = {
        "model_version": 2,
        "previous_run_date": date(2026, 11, 17),
        "previous_model_version": 1,
        "score_psi": 0.01,
        "rank_correlation": 0.97,
        "decision_threshold": 0.5,
        "decision_flip_share": 0.02,
        "shared_entities": 98,
        "new_entities": 2,
        "gone_entities": 1,
    }
    warehouse.replace_stability("churn", DAY, "run-1", row)
    warehouse.replace_stability("churn", DAY, "run-2", {**row, "score_psi": 0.03})
    warehouse.replace_stability("churn", date(2026, 11, 19), "run-3", {**row, "rank_correlation": None})
    assert warehouse.query(
        "SELECT run_date, model_version, previous_run_date, score_psi, rank_correlation, shared_entities, "
        "new_entities, gone_entities, run_id FROM score_stability_churn ORDER BY run_date"
    ) == [
        (DAY, 2, date(2026, 11, 17), 0.03, 0.97, 98, 2, 1, "run-2"),
        (date(2026, 11, 19), 2, date(2026, 11, 17), 0.01, None, 98, 2, 1, "run-3"),
    ]


def test_query_columns_returns_arrays(warehouse):
    warehouse.replace_performance(
        "churn", DAY, "champion", "realized", "run-1", [metric("roc_auc", 0.8, 10), metric("brier", None, 10)]
    )
    found = warehouse.query_columns(
        "SELECT metric, value, row_count FROM model_performance WHERE run_date = ? ORDER BY metric", [DAY]
    )
    assert list(found["metric"]) == ["brier", "roc_auc"]
    assert found["row_count"].tolist() == [10, 10]
    value = found["value"].tolist()
    assert value[1] == 0.8 and (value[0] is None or value[0] != value[0])  # NULL: None or NaN


def test_view_names_are_validated():
    assert [name for name, _ in outcome_views("churn")] == [
        "model_performance_churn",
        "score_stability_churn",
    ]
    with pytest.raises(InvalidIdentifier):
        outcome_views("churn'; DROP TABLE model_performance; --")
