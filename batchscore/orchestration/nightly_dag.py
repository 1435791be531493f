"""Builds the nightly scoring DAG of one pipeline. Wiring only: every task calls a job.

Importing this module (and so parsing the DAG files) reads no data and imports no Spark,
XGBoost, Great Expectations or Evidently; task bodies import their job when they run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from batchscore.settings import PipelineSettings

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from batchscore.settings import Settings

DOC = """
### batchscore nightly scoring: `{name}`

{description}

Waits for `raw/{dataset}/dt=<logical date>/_SUCCESS`, validates it, builds features with
`{features}`, validates them, scores them with model `{model}` (alias `{alias}` resolved once
at the start of the run and pinned), validates the scores, publishes them to
`{table}` in one transaction, writes an Evidently drift report and applies the drift gate,
which triggers `{retrain_dag}` with its evidence when it recommends retraining.
With `model.challenger_alias` set, the same scoring pass scores the challenger too and
`publish_shadow` publishes its scores to `shadow_{table}`, never to `{table}`.

The model is the alias as it stood on the run's date (its last move before the end of that
day), so a backfill scores with the model of the day.

**Backfill** any past day from the UI or `airflow backfill create`: every task is keyed by
the run's logical date. Set the `model_version` param to score with a specific version.
"""


def run_date_of(context: Any) -> date:
    """The run's logical date; runs without one are refused rather than guessed."""
    logical = context.get("logical_date")
    if logical is None:
        raise ValueError(
            "this run has no logical date; batchscore never guesses the day to score. "
            "Trigger it with a logical date (the UI's 'Logical date' field or --logical-date)."
        )
    return date(logical.year, logical.month, logical.day)


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


def record_failure(context: Any) -> None:
    """Failure callback: keep the failed attempt in `scoring_runs` and alert."""
    from batchscore.settings import load_settings
    from batchscore.storage.warehouse import RunRecord, open_warehouse
    from batchscore.telemetry.alerts import send_alert

    ti = context["ti"]
    pipeline_name = context["dag"].dag_id.removeprefix("batchscore_")
    settings = load_settings(pipeline_name)
    error = f"{ti.task_id}: {context.get('exception')!s}"[:4000]
    logical = context.get("logical_date")
    try:
        model = ti.xcom_pull(task_ids="resolve_model") or {}
    except Exception:  # the failure being reported may be XCom itself
        model = {}
    if logical is not None:
        open_warehouse(settings.platform.warehouse_url).record_run(
            RunRecord(
                run_id=context["run_id"],
                try_number=ti.try_number,
                pipeline=pipeline_name,
                run_date=run_date_of(context),
                model_name=settings.pipeline.model.name,
                model_version=model.get("model_version"),
                status="failed",
                error=error,
            )
        )
    send_alert(
        settings.platform.alert_webhook,
        f"batchscore {pipeline_name}: task failed",
        {"run_id": context["run_id"], "error": error},
    )


def build_nightly_dag(pipeline: PipelineSettings) -> DAG:
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
    from airflow.sdk import DAG, Param, PokeReturnValue, get_current_context, task

    name = pipeline.name
    schedule = pipeline.schedule
    default_args = {
        "owner": pipeline.owner,
        "retries": schedule.retries,
        "retry_delay": timedelta(seconds=schedule.retry_delay_s),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(seconds=schedule.execution_timeout_s),
        "on_failure_callback": record_failure,
    }

    def settings() -> Settings:
        from batchscore.settings import load_settings

        return load_settings(name)

    with DAG(
        dag_id=pipeline.dag_id,
        description=pipeline.description,
        schedule=schedule.cron,
        start_date=datetime.combine(schedule.start_date, datetime.min.time(), tzinfo=UTC),
        catchup=schedule.catchup,
        max_active_runs=schedule.max_active_runs,
        default_args=default_args,
        tags=["batchscore", *pipeline.tags],
        doc_md=DOC.format(
            name=name,
            description=pipeline.description,
            dataset=pipeline.dataset.name,
            features=pipeline.features,
            model=pipeline.model.name,
            alias=pipeline.model.alias,
            table=pipeline.scores_table,
            retrain_dag=pipeline.retrain_dag_id,
        ),
        params={
            "model_version": Param(
                None,
                type=["null", "integer"],
                minimum=1,
                description="Score with this model version instead of the alias's current one.",
            )
        },
        render_template_as_native_obj=True,
    ) as dag:

        @task
        def resolve_model() -> dict[str, Any]:
            """Pin the model version for the whole run (retries read it from XCom): the alias as it
            stood on the run's date, unless the `model_version` param overrides it."""
            from jobs import resolve_model as job

            context = get_current_context()
            requested = context["params"].get("model_version")
            with no_retry_for_permanent_failures():
                return job.run(
                    settings(),
                    run_date_of(context),
                    int(requested) if requested else None,
                    run_id=context["run_id"],
                )

        @task.sensor(
            poke_interval=pipeline.sensor.poke_interval_s,
            timeout=pipeline.sensor.timeout_s,
            mode=pipeline.sensor.mode,
        )
        def wait_for_partition() -> PokeReturnValue:
            """Done when the day's raw partition carries its _SUCCESS marker; never falls back."""
            from batchscore.storage.lake import Lake

            s = settings()
            lake = Lake(s.platform.lake_url, s.platform)
            partition = lake.raw_partition(s.pipeline.dataset.name, run_date_of(get_current_context()))
            return PokeReturnValue(is_done=lake.landed(partition), xcom_value=lake.remote_url(partition))

        @task
        def validate_raw() -> dict[str, Any]:
            from jobs import validate

            with no_retry_for_permanent_failures():
                return costed(validate.run, settings(), run_date_of(get_current_context()), "raw")

        @task
        def build_features() -> dict[str, Any]:
            from jobs import build_features as job

            with no_retry_for_permanent_failures():
                return costed(job.run, settings(), run_date_of(get_current_context()))

        @task
        def validate_features() -> dict[str, Any]:
            from jobs import validate

            with no_retry_for_permanent_failures():
                return costed(validate.run, settings(), run_date_of(get_current_context()), "features")

        @task
        def score(model: dict[str, Any]) -> dict[str, Any]:
            from jobs import score as job

            with no_retry_for_permanent_failures():
                return costed(
                    job.run,
                    settings(),
                    run_date_of(get_current_context()),
                    model["model_version"],
                    challenger_version=model.get("challenger_version"),
                    challenger_pinned=True,
                )

        @task
        def validate_scores(model: dict[str, Any]) -> dict[str, Any]:
            from jobs import validate

            with no_retry_for_permanent_failures():
                return costed(
                    validate.run,
                    settings(),
                    run_date_of(get_current_context()),
                    "scores",
                    model["model_version"],
                )

        @task
        def publish(model: dict[str, Any], *stages: dict[str, Any]) -> dict[str, Any]:
            from jobs import publish as job

            context = get_current_context()
            timings = {s["stage"]: float(s["seconds"]) for s in stages if "seconds" in s}
            cpu = {s["stage"]: float(s["cpu_seconds"]) for s in stages if s.get("cpu_seconds") is not None}
            with no_retry_for_permanent_failures():
                return job.run(
                    settings(),
                    run_date_of(context),
                    model["model_version"],
                    run_id=context["run_id"],
                    try_number=context["ti"].try_number,
                    stage_seconds=timings,
                    stage_cpu_seconds=cpu,
                    model_source=model.get("source"),
                )

        @task
        def publish_shadow(scored: dict[str, Any]) -> dict[str, Any]:
            """Challenger scores (when the score stage made any) to the shadow table, validated first."""
            challenger = scored.get("challenger")
            if not challenger:
                return {"stage": "publish_shadow", "skipped": "no challenger scored"}
            from jobs import publish as job
            from jobs import validate

            context = get_current_context()
            version = int(challenger["model_version"])
            with no_retry_for_permanent_failures():
                validate.run(settings(), run_date_of(context), "scores", version)
                return job.run_shadow(settings(), run_date_of(context), version, run_id=context["run_id"])

        @task
        def drift_report(model: dict[str, Any]) -> dict[str, Any]:
            from jobs import drift

            with no_retry_for_permanent_failures():
                return drift.run(settings(), run_date_of(get_current_context()), model["model_version"])

        @task
        def drift_gate(model: dict[str, Any], drift: dict[str, Any]) -> dict[str, Any]:
            from jobs import gate

            context = get_current_context()
            with no_retry_for_permanent_failures():
                return gate.run(
                    settings(), run_date_of(context), model["model_version"], context["run_id"], drift
                )

        @task.short_circuit
        def retrain_needed(gate: dict[str, Any]) -> bool:
            """Go on to trigger the retrain DAG only when the gate recommends retraining."""
            return bool(gate.get("trigger_retrain"))

        model = resolve_model()
        ready = wait_for_partition()
        raw_checked = validate_raw()
        features = build_features()
        features_checked = validate_features()
        scored = score(model)
        scores_checked = validate_scores(model)
        published = publish(model, raw_checked, features, features_checked, scored, scores_checked)
        drift = drift_report(model)

        ready >> raw_checked >> features >> features_checked >> scored >> scores_checked >> published
        published >> drift
        scores_checked >> publish_shadow(scored)
        gate = drift_gate(model, drift)
        trigger = TriggerDagRunOperator(
            task_id="trigger_retrain",
            trigger_dag_id=pipeline.retrain_dag_id,
            trigger_run_id="drift__{{ ds }}",
            logical_date="{{ logical_date }}",
            conf={"evidence": gate},
            skip_when_already_exists=True,
            openlineage_inject_parent_info=False,
        )
        retrain_needed(gate) >> trigger

    return dag
