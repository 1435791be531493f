"""Every batchscore DAG records a failed task in `scoring_runs` and alerts: the callback the
DAG files attach, called with the context Airflow hands it, against a real DuckDB warehouse
and a real webhook."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import pytest

from batchscore.settings import load_settings
from tests.webhook import collecting_webhook

DAY = date(2026, 11, 21)


@pytest.fixture
def alerts(monkeypatch, tmp_path) -> Iterator[list[dict[str, Any]]]:
    """A webhook that collects alerts, and a fresh DuckDB warehouse, in the environment."""
    monkeypatch.setenv("BATCHSCORE_WAREHOUSE_URL", f"duckdb://{tmp_path / 'wh.duckdb'}")
    monkeypatch.setenv("BATCHSCORE_LAKE_URL", str(tmp_path / "lake"))
    monkeypatch.delenv("BATCHSCORE_PUSHGATEWAY_URL", raising=False)
    with collecting_webhook() as (url, received):
        monkeypatch.setenv("BATCHSCORE_ALERT_WEBHOOK", url)
        yield received


class TaskInstance:
    """The callback's `ti`: the failed task and the XComs of the run."""

    def __init__(self, task_id: str, xcoms: dict[str, Any]):
        self.task_id, self.try_number, self._xcoms = task_id, 2, xcoms

    def xcom_pull(self, task_ids: str) -> Any:
        return self._xcoms.get(task_ids)


def fail(dag: Any, task_id: str, xcoms: dict[str, Any], **context: Any) -> None:
    """Call the failure callback the DAG attached to `task_id`, as Airflow does on a failure."""
    callback = dag.get_task(task_id).on_failure_callback
    callbacks = callback if isinstance(callback, list) else [callback]
    assert [f"{c.__module__}.{c.__name__}" for c in callbacks] == [
        "batchscore.orchestration.task_support.record_failure"
    ]
    for call in callbacks:
        call(
            {
                "ti": TaskInstance(task_id, xcoms),
                "dag": dag,
                "run_id": f"manual__{DAY}",
                "exception": RuntimeError("boom"),
                "params": {},
                **context,
            }
        )


def recorded(tmp_path) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT run_id, try_number, pipeline, run_date, model_name, model_version, status, error, "
            "publish_by_minutes FROM scoring_runs ORDER BY recorded_at"
        ).fetchall()


def test_a_failed_retrain_task_is_recorded_and_alerted(alerts, tmp_path):
    from batchscore.orchestration.retrain_dag import build_retrain_dag

    pipeline = load_settings("churn").pipeline
    dag = build_retrain_dag(pipeline)
    logical = datetime(2026, 11, 21, tzinfo=UTC)
    fail(dag, "train_challenger", {}, logical_date=logical)
    fail(dag, "promotion_gate", {"train_challenger": {"model_version": 3}}, logical_date=logical)

    by = pipeline.schedule.publish_by_minutes
    assert recorded(tmp_path) == [
        (
            f"manual__{DAY}",
            2,
            "churn",
            DAY,
            "churn_xgb",
            None,
            "retrain_failed",
            "train_challenger: boom",
            by,
        ),
        (f"manual__{DAY}", 2, "churn", DAY, "churn_xgb", 3, "retrain_failed", "promotion_gate: boom", by),
    ]
    assert alerts == [
        {
            "subject": "batchscore churn retrain: task failed",
            "details": {"run_id": f"manual__{DAY}", "error": f"{task}: boom"},
        }
        for task in ("train_challenger", "promotion_gate")
    ]


def test_a_failed_outcomes_task_is_recorded_and_alerted_on_its_partition_day(alerts, tmp_path):
    from batchscore.orchestration.outcomes_dag import build_outcomes_dag

    pipeline = load_settings("churn").pipeline
    dag = build_outcomes_dag(pipeline)
    fail(dag, "realize", {}, logical_date=None, partition_key="2026-11-22")

    assert recorded(tmp_path) == [
        (
            f"manual__{DAY}",
            2,
            "churn",
            date(2026, 11, 22),
            "churn_xgb",
            None,
            "outcomes_failed",
            "realize: boom",
            pipeline.schedule.publish_by_minutes,
        )
    ]
    assert alerts == [
        {
            "subject": "batchscore churn outcomes: task failed",
            "details": {"run_id": f"manual__{DAY}", "error": "realize: boom"},
        }
    ]


def test_a_failed_nightly_task_is_recorded_as_before(alerts, tmp_path):
    from batchscore.orchestration.nightly_dag import build_nightly_dag

    dag = build_nightly_dag(load_settings("churn").pipeline)
    fail(
        dag,
        "publish",
        {"resolve_model": {"model_version": 1}},
        logical_date=datetime(2026, 11, 21, tzinfo=UTC),
    )

    assert [row[5:8] for row in recorded(tmp_path)] == [(1, "failed", "publish: boom")]
    assert alerts == [
        {
            "subject": "batchscore churn: task failed",
            "details": {"run_id": f"manual__{DAY}", "error": "publish: boom"},
        }
    ]


def test_a_dag_no_pipeline_builds_is_named():
    from batchscore.orchestration.task_support import dag_of
    from batchscore.settings import ConfigError

    assert dag_of("batchscore_churn_retrain") == ("churn", "retrain")
    assert dag_of("batchscore_churn_outcomes") == ("churn", "outcomes")
    assert dag_of("batchscore_churn") == ("churn", "nightly")
    with pytest.raises(ConfigError, match="batchscore_nobody"):
        dag_of("batchscore_nobody")
