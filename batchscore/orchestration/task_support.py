"""The stage wrapper every batchscore task runs in, and the defaults every DAG's tasks get.

`stage` turns a stage function `(run: RunContext, *inputs) -> result` into the task body the
DAG binds (`(pipeline: str, *inputs)`): it builds the run context once, applies the retry
policy (bad data and broken contracts fail at once; only other errors are retried), measures
the stage's CPU seconds when asked and pushes its metrics after it succeeds. `task_defaults`
attaches `record_failure`, which records a failed attempt and alerts, to every task of the
nightly, retrain and outcomes DAGs.

Importing this module imports no Spark, XGBoost, Great Expectations or Evidently.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from batchscore.orchestration.run_context import RunContext, run_date_of
from batchscore.orchestration.run_metrics import push_metrics

if TYPE_CHECKING:
    from batchscore.settings import PipelineSettings

StageFunction = Callable[..., Any]
"""A stage: `(run: RunContext, *inputs)` returning the task's result (its XCom)."""


@contextlib.contextmanager
def no_retry_for_permanent_failures() -> Iterator[None]:
    """Bad data and broken contracts fail the task at once; only other errors are retried."""
    from airflow.sdk.exceptions import AirflowFailException

    from batchscore.errors import PermanentFailure

    try:
        yield
    except PermanentFailure as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def stage(
    *,
    cost: bool = False,
    metrics: Callable[[RunContext, Any], object] | None = None,
    retry_policy: bool = True,
) -> Callable[[StageFunction], StageFunction]:
    """Wrap a stage function into a task body taking the pipeline's name first.

    `cost`: add the CPU seconds the stage's process tree spent (`cpu_seconds`, in
    `scoring_runs`) to its result. `metrics`: called with the run and the result once the
    stage succeeded. `retry_policy`: fail permanent failures at once (off for sensors, whose
    poke is retried by the sensor itself).
    """

    def wrap(body: StageFunction) -> StageFunction:
        def task_body(pipeline: str, *inputs: Any) -> Any:
            if not retry_policy:
                return body(RunContext.current(pipeline), *inputs)
            with no_retry_for_permanent_failures():
                run = RunContext.current(pipeline)
                result = costed(body, run, *inputs) if cost else body(run, *inputs)
            if metrics is not None:
                metrics(run, result)
            return result

        return _as_task_body(task_body, body)

    return wrap


def _as_task_body(task_body: StageFunction, body: StageFunction) -> StageFunction:
    """Give the task body the stage's name, docs and signature, with `pipeline: str` in place
    of the run context: Airflow takes the task id, its docs and its inputs from them."""
    functools.update_wrapper(task_body, body)
    signature = inspect.signature(body)
    first, *inputs = signature.parameters.values()
    pipeline = inspect.Parameter("pipeline", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="str")
    task_body.__signature__ = signature.replace(parameters=[pipeline, *inputs])  # type: ignore[attr-defined]
    annotations = {k: v for k, v in body.__annotations__.items() if k != first.name}
    task_body.__annotations__ = {"pipeline": "str", **annotations}
    return task_body


def costed(run: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A stage's result plus the CPU seconds its process tree spent (the run's cost, in scoring_runs)."""
    from batchscore.telemetry.costs import costed as measure

    return measure(run, *args, **kwargs)


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
