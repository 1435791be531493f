"""The run context a task builds once from Airflow's context, and the stage wrapper every task
runs in: retry policy, costs, metrics after success, and the signature Airflow binds."""

from __future__ import annotations

import inspect
from datetime import UTC, date, datetime
from typing import Any

import pytest

from batchscore.errors import BadInput
from batchscore.orchestration.run_context import RunContext
from batchscore.orchestration.task_support import stage


class TaskInstance:
    try_number = 3


class DagRun:
    conf = {"evidence": {"run_date": "2026-11-19"}}


def airflow_context(**params: Any) -> dict[str, Any]:
    return {
        "ti": TaskInstance(),
        "dag_run": DagRun(),
        "run_id": "manual__2026-11-21",
        "logical_date": datetime(2026, 11, 21, 23, 30, tzinfo=UTC),
        "params": params,
    }


@pytest.fixture
def in_a_task(monkeypatch, tmp_path) -> list[dict[str, Any]]:
    """Airflow's current context, counting how often a task asks for it."""
    monkeypatch.setenv("BATCHSCORE_LAKE_URL", str(tmp_path / "lake"))
    asked: list[dict[str, Any]] = []

    def current() -> dict[str, Any]:
        asked.append(airflow_context(force=True))
        return asked[-1]

    monkeypatch.setattr("airflow.sdk.get_current_context", current)
    return asked


def test_the_run_context_holds_what_the_stages_read(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCHSCORE_LAKE_URL", str(tmp_path / "lake"))
    run = RunContext.of("churn", airflow_context(force=True, model_version=4))
    assert (run.run_date, run.run_id, run.try_number, run.force) == (
        date(2026, 11, 21),
        "manual__2026-11-21",
        3,
        True,
    )
    assert run.pipeline.name == "churn" and run.params["model_version"] == 4
    assert run.conf["evidence"]["run_date"] == "2026-11-19"
    assert run.lake.root == tmp_path / "lake" and run.lake is run.lake, "opened once"
    assert run.warehouse_url == run.platform.warehouse_url
    assert not RunContext.of("churn", airflow_context()).force
    with pytest.raises(AttributeError):
        run.force = False  # type: ignore[misc]


def test_a_stage_gets_one_context_and_airflow_binds_the_pipeline_name(in_a_task):
    seen: list[RunContext] = []
    pushed: list[tuple[RunContext, dict[str, Any]]] = []

    @stage(cost=True, metrics=lambda run, result: pushed.append((run, result)))
    def score(run: RunContext, model: dict[str, Any]) -> dict[str, Any]:
        """Score the day."""
        seen.append(run)
        return {"stage": "score", "model_version": model["model_version"]}

    assert score.__name__ == "score" and score.__doc__ == "Score the day."
    assert list(inspect.signature(score).parameters) == ["pipeline", "model"]
    assert score.__annotations__ == {"pipeline": "str", "model": "dict[str, Any]", "return": "dict[str, Any]"}
    result = score("churn", {"model_version": 2})
    assert len(in_a_task) == 1 and len(seen) == 1 and seen[0].force
    assert result["model_version"] == 2 and result["cpu_seconds"] >= 0
    assert pushed == [(seen[0], result)]


def test_permanent_failures_fail_at_once_other_errors_are_retried(in_a_task):
    from airflow.sdk.exceptions import AirflowFailException

    @stage()
    def validate_raw(run: RunContext) -> dict[str, Any]:
        raise BadInput("customers dt=2026-11-21: 10 duplicate keys")

    @stage()
    def publish(run: RunContext) -> dict[str, Any]:
        raise ConnectionError("warehouse unreachable")

    with pytest.raises(AirflowFailException, match="BadInput: customers dt=2026-11-21: 10 duplicate keys"):
        validate_raw("churn")
    with pytest.raises(ConnectionError):
        publish("churn")

    @stage(retry_policy=False)
    def wait_for_partition(run: RunContext) -> Any:
        raise BadInput("a sensor's poke keeps its own failure")

    with pytest.raises(BadInput):
        wait_for_partition("churn")


def test_metrics_are_pushed_only_after_success(in_a_task):
    pushed: list[Any] = []

    @stage(metrics=lambda run, result: pushed.append(result))
    def drift_gate(run: RunContext) -> dict[str, Any]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        drift_gate("churn")
    assert pushed == []


def test_the_sensor_logs_what_it_waits_for(in_a_task, tmp_path, caplog):
    from batchscore.orchestration.nightly_tasks import wait_for_partition

    caplog.set_level("INFO", logger="batchscore.orchestration.nightly_tasks")
    poke = wait_for_partition("churn")
    marker = tmp_path / "lake" / "raw" / "customers" / "dt=2026-11-21" / "_SUCCESS"
    assert not poke.is_done
    assert caplog.messages == [
        f"waiting for the raw partition of customers for 2026-11-21: {marker} "
        "(checked every 300s, for up to 21600s)"
    ]
