"""What every DAG task shares: the run's logical date, no retries for permanent failures,
the CPU cost of a stage, and the failure callback that records and alerts.

Importing this module imports no Spark, XGBoost, Great Expectations or Evidently.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchscore.settings import PipelineSettings, Settings


def run_date_of(context: Any) -> date:
    """The run's logical date, or for a partition-triggered run its partition key's date; runs
    with neither are refused rather than guessed."""
    logical = context.get("logical_date")
    if logical is None:
        key = context.get("partition_key")
        if key:
            try:
                return date.fromisoformat(str(key)[:10])
            except ValueError:
                raise ValueError(
                    f"partition key {key!r} is not a date (YYYY-MM-DD): it names no day to score"
                ) from None
        raise ValueError(
            "this run has no logical date; batchscore never guesses the day to score. "
            "Trigger it with a logical date (the UI's 'Logical date' field or --logical-date)."
        )
    return date(logical.year, logical.month, logical.day)


def current() -> tuple[Any, date]:
    """The running task's Airflow context and its run date."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    return context, run_date_of(context)


def forced(context: Any) -> bool:
    """Whether the run was triggered with `force` (recompute and republish, reuse nothing)."""
    return bool((context.get("params") or {}).get("force"))


def stage_seconds(stage: dict[str, Any]) -> float:
    """What a stage took in this run: the reuse check for a reused output, else its compute time."""
    return float(stage["reuse_seconds"] if stage.get("reused") else stage["seconds"])


def settings_of(pipeline: str) -> Settings:
    from batchscore.settings import load_settings

    return load_settings(pipeline)


@contextlib.contextmanager
def no_retry_for_permanent_failures() -> Iterator[None]:
    """Bad data and broken contracts fail the task at once; only other errors are retried."""
    from airflow.sdk.exceptions import AirflowFailException

    from batchscore.errors import PermanentFailure

    try:
        yield
    except PermanentFailure as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def costed(run: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A stage's result plus the CPU seconds its process tree spent (the run's cost, in scoring_runs)."""
    from batchscore.telemetry.costs import costed as measure

    return measure(run, *args, **kwargs)


STAGE_TASKS = (
    "validate_raw",
    "build_features",
    "validate_features",
    "score",
    "validate_scores",
    "publish",
    "drift_report",
)


def push_metrics(
    context: Any, settings: Settings, *, success: bool, gate: dict[str, Any] | None = None
) -> bool:
    """Push the run's stage results (from XCom) to the Pushgateway, when one is configured."""
    from batchscore.telemetry.metrics import push_run_metrics

    if not settings.platform.pushgateway_url:
        return False
    ti = context["ti"]
    stages: list[dict[str, Any]] = []
    model: dict[str, Any] = {}
    try:
        for task_id in STAGE_TASKS:
            value = ti.xcom_pull(task_ids=task_id)
            if isinstance(value, dict):
                stages.append(value)
        model = ti.xcom_pull(task_ids="resolve_model") or {}
    except Exception:  # a failure in XCom itself still pushes success=0
        pass
    return push_run_metrics(
        settings.platform.pushgateway_url,
        settings.pipeline.name,
        stages,
        success=success,
        alert_webhook=settings.platform.alert_webhook,
        model_version=model.get("model_version"),
        gate=gate,
    )


DAG_KINDS = ("nightly", "retrain", "outcomes")
"""The DAGs built for each pipeline (`nightly_dag`, `retrain_dag`, `outcomes_dag`)."""


def dag_of(dag_id: str) -> tuple[str, str]:
    """The pipeline and kind of DAG (one of `DAG_KINDS`) a DAG id names, from the pipeline files."""
    from batchscore.settings import ConfigError, discover_pipelines

    for pipeline in discover_pipelines():
        ids = (pipeline.dag_id, pipeline.retrain_dag_id, pipeline.outcomes_dag_id)
        if dag_id in ids:
            return pipeline.name, DAG_KINDS[ids.index(dag_id)]
    raise ConfigError(f"no pipeline file builds the DAG {dag_id!r}")


def record_failure(context: Any) -> None:
    """Failure callback of every batchscore DAG: keep the failed attempt in `scoring_runs` and alert.

    A nightly attempt is recorded as `failed`, with the run's pinned model version; a retrain
    or outcomes attempt as `retrain_failed` / `outcomes_failed` (with the challenger's version
    once one is trained), so it never reads as a failed scoring run of the same day.
    """
    from batchscore.settings import load_settings
    from batchscore.storage.warehouse import RunRecord, open_warehouse
    from batchscore.telemetry.alerts import send_alert

    ti = context["ti"]
    pipeline_name, kind = dag_of(context["dag"].dag_id)
    settings = load_settings(pipeline_name)
    error = f"{ti.task_id}: {context.get('exception')!s}"[:4000]
    try:
        run_date: date | None = run_date_of(context)
    except ValueError:  # a run without a day (refused by its first task) has no row to record
        run_date = None
    version_task = {"nightly": "resolve_model", "retrain": "train_challenger"}.get(kind)
    try:
        model = (ti.xcom_pull(task_ids=version_task) if version_task else None) or {}
    except Exception:  # the failure being reported may be XCom itself
        model = {}
    if run_date is not None:
        open_warehouse(settings.platform.warehouse_url).record_run(
            RunRecord(
                run_id=context["run_id"],
                try_number=ti.try_number,
                pipeline=pipeline_name,
                run_date=run_date,
                model_name=settings.pipeline.model.name,
                model_version=model.get("model_version"),
                status="failed" if kind == "nightly" else f"{kind}_failed",
                error=error,
                publish_by_minutes=settings.pipeline.schedule.publish_by_minutes,
                timezone=settings.pipeline.schedule.timezone,
            )
        )
    if kind == "nightly":  # the run metrics are the nightly stages'
        push_metrics(context, settings, success=False)
    send_alert(
        settings.platform.alert_webhook,
        f"batchscore {pipeline_name}: task failed"
        if kind == "nightly"
        else f"batchscore {pipeline_name} {kind}: task failed",
        {"run_id": context["run_id"], "error": error},
    )


def task_defaults(pipeline: PipelineSettings, backoff: bool = True) -> dict[str, Any]:
    """Every batchscore DAG's task defaults: the pipeline's owner, retries, timeout and the
    failure callback that records and alerts."""
    schedule = pipeline.schedule
    defaults: dict[str, Any] = {
        "owner": pipeline.owner,
        "on_failure_callback": record_failure,
        "retries": schedule.retries,
        "retry_delay": timedelta(seconds=schedule.retry_delay_s),
        "execution_timeout": timedelta(seconds=schedule.execution_timeout_s),
    }
    if backoff:
        defaults["retry_exponential_backoff"] = True
    return defaults
