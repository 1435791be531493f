"""The retrain DAG's stages, one function per task, each taking the run's context (built once
per task by `task_support.stage`) and calling `jobs.retrain`.

The DAG binds each task to the pipeline's name; jobs are imported when the task runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from batchscore.orchestration.run_context import RunContext
from batchscore.orchestration.task_support import stage


def drift_from_of(params: Mapping[str, Any], conf: Mapping[str, Any]) -> date | None:
    """The drift day: the `drift_from` param, else the triggering gate's run date, else None."""
    if params.get("drift_from"):
        return date.fromisoformat(str(params["drift_from"]))
    evidence = conf.get("evidence") or {}
    return date.fromisoformat(evidence["run_date"]) if evidence.get("run_date") else None


@stage(retry_policy=False)
def wait_for_labels(run: RunContext) -> Any:
    """Done when the label partition of the cut-off day has landed."""
    from airflow.sdk import PokeReturnValue

    from jobs.retrain import cutoff_date

    cutoff = cutoff_date(run.run_date, drift_from_of(run.params, run.conf), run.settings)
    partition = run.lake.raw_partition(run.pipeline.labels.dataset, cutoff)
    return PokeReturnValue(is_done=run.lake.is_complete(partition), xcom_value=cutoff.isoformat())


@stage()
def train_challenger(run: RunContext) -> dict[str, Any]:
    """Train on the point-in-time training set and register the challenger."""
    from jobs import retrain

    return retrain.train_challenger(
        run.settings,
        run.run_date,
        drift_from=drift_from_of(run.params, run.conf),
        evidence=run.conf.get("evidence"),
        run_id=run.run_id,
    )


@stage()
def evaluate(run: RunContext, trained: dict[str, Any]) -> dict[str, Any]:
    """Champion and challenger on the same holdout (and the challenger's shadow scores)."""
    from jobs import retrain

    return retrain.evaluate(run.settings, run.run_date, trained["model_version"])


@stage()
def promotion_gate(run: RunContext, evaluation: dict[str, Any]) -> dict[str, Any]:
    """Promote, or record why not."""
    from jobs import retrain

    return retrain.promotion_gate(run.settings, run.run_date, evaluation, run.run_id)
