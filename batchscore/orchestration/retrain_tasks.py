"""The retrain DAG's task bodies, one function per task, each calling `jobs.retrain`.

Every function takes the pipeline's name first (bound when the DAG is built); jobs are
imported when the task runs.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from batchscore.orchestration.task_support import current, no_retry_for_permanent_failures, settings_of


def drift_from_of(context: Any) -> date | None:
    """The drift day: the `drift_from` param, else the triggering gate's run date, else None."""
    params = context["params"]
    if params.get("drift_from"):
        return date.fromisoformat(str(params["drift_from"]))
    evidence = (context["dag_run"].conf or {}).get("evidence") or {}
    return date.fromisoformat(evidence["run_date"]) if evidence.get("run_date") else None


def wait_for_labels(pipeline: str) -> Any:
    """Done when the label partition of the cut-off day has landed."""
    from airflow.sdk import PokeReturnValue

    from batchscore.storage.lake import Lake
    from jobs.retrain import cutoff_date

    s = settings_of(pipeline)
    context, run_date = current()
    cutoff = cutoff_date(run_date, drift_from_of(context), s)
    partition = Lake(s.platform.lake_url).raw_partition(s.pipeline.labels.dataset, cutoff)
    return PokeReturnValue(is_done=Lake.is_complete(partition), xcom_value=cutoff.isoformat())


def train_challenger(pipeline: str) -> dict[str, Any]:
    """Train on the point-in-time training set and register the challenger."""
    from jobs import retrain

    context, run_date = current()
    evidence = (context["dag_run"].conf or {}).get("evidence")
    with no_retry_for_permanent_failures():
        return retrain.train_challenger(
            settings_of(pipeline),
            run_date,
            drift_from=drift_from_of(context),
            evidence=evidence,
            run_id=context["run_id"],
        )


def evaluate(pipeline: str, trained: dict[str, Any]) -> dict[str, Any]:
    """Champion and challenger on the same holdout (and the challenger's shadow scores)."""
    from jobs import retrain

    with no_retry_for_permanent_failures():
        return retrain.evaluate(settings_of(pipeline), current()[1], trained["model_version"])


def promotion_gate(pipeline: str, evaluation: dict[str, Any]) -> dict[str, Any]:
    """Promote, or record why not."""
    from jobs import retrain

    context, run_date = current()
    with no_retry_for_permanent_failures():
        return retrain.promotion_gate(settings_of(pipeline), run_date, evaluation, context["run_id"])
