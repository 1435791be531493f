"""Builds the retrain DAG of one pipeline. Wiring only: every task calls `jobs.retrain`.

Triggered by the nightly DAG's drift gate (conf: `{"evidence": <the gate's result>}`) or by
hand (UI or `airflow dags trigger`, optionally with the `drift_from` param). Parsing reads
no data and imports no Spark, XGBoost or Evidently.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from batchscore.orchestration.nightly_dag import no_retry_for_permanent_failures, run_date_of
from batchscore.settings import PipelineSettings

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from batchscore.settings import Settings

DOC = """
### batchscore retraining: `{name}`

Waits until the labels needed have landed (`raw/{labels}/dt=<cut-off>/_SUCCESS`), builds
a point-in-time training set with `{features}`, trains an XGBoost challenger for `{model}`,
registers it as `challenger`, evaluates it against the champion on the same holdout
(AUC, log loss, calibration, per segment; shadow scores when present) and applies the
promotion gate. Auto-promotion: **{auto}**; otherwise promote with
`batchscore models promote --pipeline {name} --version N`.

Triggered by the nightly drift gate with its evidence as conf, or by hand.
"""


def drift_from_of(context: Any) -> date | None:
    """The drift day: the `drift_from` param, else the triggering gate's run date, else None."""
    params = context["params"]
    if params.get("drift_from"):
        return date.fromisoformat(str(params["drift_from"]))
    evidence = (context["dag_run"].conf or {}).get("evidence") or {}
    return date.fromisoformat(evidence["run_date"]) if evidence.get("run_date") else None


def build_retrain_dag(pipeline: PipelineSettings) -> DAG:
    from airflow.sdk import DAG, Param, PokeReturnValue, get_current_context, task

    name = pipeline.name
    schedule = pipeline.schedule

    def settings() -> Settings:
        from batchscore.settings import load_settings

        return load_settings(name)

    with DAG(
        dag_id=pipeline.retrain_dag_id,
        description=f"Retrain, evaluate and gate the promotion of {pipeline.model.name}",
        schedule=None,
        start_date=datetime.combine(schedule.start_date, datetime.min.time(), tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        # Runs only when the drift gate (or an operator) triggers it; paused, triggers would queue.
        is_paused_upon_creation=False,
        default_args={
            "owner": pipeline.owner,
            "retries": schedule.retries,
            "retry_delay": timedelta(seconds=schedule.retry_delay_s),
            "execution_timeout": timedelta(seconds=schedule.execution_timeout_s),
        },
        tags=["batchscore", "retrain", *pipeline.tags],
        doc_md=DOC.format(
            name=name,
            labels=pipeline.labels.dataset,
            features=pipeline.features,
            model=pipeline.model.name,
            auto=pipeline.promotion.auto,
        ),
        params={
            "drift_from": Param(
                None,
                type=["null", "string"],
                format="date",
                description="Train on labelled days from this date on (default: the drift gate's day, or all).",
            )
        },
        render_template_as_native_obj=True,
    ) as dag:

        @task.sensor(
            poke_interval=pipeline.sensor.poke_interval_s,
            timeout=(pipeline.training.retrain_after_days + 2) * 86_400,
            mode="reschedule",
        )
        def wait_for_labels() -> PokeReturnValue:
            """Done when the label partition of the cut-off day has landed."""
            from batchscore.storage.lake import Lake
            from jobs.retrain import cutoff_date

            s = settings()
            context = get_current_context()
            cutoff = cutoff_date(run_date_of(context), drift_from_of(context), s)
            partition = Lake(s.platform.lake_url).raw_partition(s.pipeline.labels.dataset, cutoff)
            return PokeReturnValue(is_done=Lake.is_complete(partition), xcom_value=cutoff.isoformat())

        @task
        def train_challenger() -> dict[str, Any]:
            from jobs import retrain

            context = get_current_context()
            evidence = (context["dag_run"].conf or {}).get("evidence")
            with no_retry_for_permanent_failures():
                return retrain.train_challenger(
                    settings(),
                    run_date_of(context),
                    drift_from=drift_from_of(context),
                    evidence=evidence,
                    run_id=context["run_id"],
                )

        @task
        def evaluate(trained: dict[str, Any]) -> dict[str, Any]:
            from jobs import retrain

            with no_retry_for_permanent_failures():
                return retrain.evaluate(
                    settings(), run_date_of(get_current_context()), trained["model_version"]
                )

        @task
        def promotion_gate(evaluation: dict[str, Any]) -> dict[str, Any]:
            from jobs import retrain

            context = get_current_context()
            with no_retry_for_permanent_failures():
                return retrain.promotion_gate(settings(), run_date_of(context), evaluation, context["run_id"])

        labels_ready = wait_for_labels()
        trained: Any = train_challenger()
        evaluated: Any = evaluate(trained)
        promotion_gate(evaluated)
        labels_ready >> trained

    return dag
