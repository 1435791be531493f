"""Builds the nightly scoring DAG of one pipeline: a list of tasks and their wiring.

The task bodies live in `nightly_tasks` (one function per stage, each calling its job).
Importing this module (and so parsing the DAG files) reads no data and imports no Spark,
XGBoost, Great Expectations or Evidently; task bodies import their job when they run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from batchscore.orchestration import nightly_tasks as t
from batchscore.orchestration.assets import nightly_schedule
from batchscore.orchestration.deadlines import deadline_alert
from batchscore.orchestration.task_support import task_defaults
from batchscore.settings import PipelineSettings

if TYPE_CHECKING:
    from airflow.sdk import DAG

DOC = """
### batchscore nightly scoring: `{name}`

{description}

Waits for `raw/{dataset}/dt=<logical date>/_SUCCESS`, validates it, builds features with
`{features}`, validates them, scores them with model `{model}` (alias `{alias}` resolved once
at the start of the run and pinned), validates the scores, publishes them to
`{table}` in one transaction, writes an Evidently drift report and applies the drift gate,
which triggers `{retrain_dag}` with its evidence when it recommends retraining.
`evaluate` (after `publish` and `publish_shadow`) writes the day's estimated performance, the
realized performance of each day whose labels have landed, and the day's score stability
(`model_performance_{name}`, `score_stability_{name}`); a realized breach can trigger
retraining too (`performance.trigger_retrain`). The day's model-health page
(`reports/health/{name}/dt=<logical date>/health.html`) is rendered last.
With `model.challenger_alias` set, the same scoring pass scores the challenger too and
`publish_shadow` publishes its scores to `shadow_{table}`, never to `{table}`.

The model is the alias as it stood on the run's date (its last move before the end of that
day), so a backfill scores with the model of the day.

**Backfill** any past day from the UI or `airflow backfill create`: every task is keyed by
the run's logical date. Set the `model_version` param to score with a specific version.

**Reruns and retries** reuse the features and scores already in the lake when their inputs,
feature set, model version and settings are unchanged; a day already published with the same
inputs and model version is a no-op (`publish` says so). Set the `force` param (Trigger with
config) to recompute every stage and republish.
"""


def dag_arguments(pipeline: PipelineSettings) -> dict[str, Any]:
    """The DAG's schedule, retry policy, failure callback, docs and params, from the pipeline file."""
    from airflow.sdk import Param

    schedule = pipeline.schedule
    # A partition-triggered run has no logical date to count a deadline from.
    deadline = deadline_alert(pipeline) if schedule.on == "cron" else None
    return {
        "dag_id": pipeline.dag_id,
        "description": pipeline.description,
        "schedule": nightly_schedule(pipeline),
        "start_date": datetime.combine(schedule.start_date, datetime.min.time(), tzinfo=UTC),
        "catchup": schedule.catchup,
        "max_active_runs": schedule.max_active_runs,
        "default_args": task_defaults(pipeline),
        "tags": ["batchscore", *pipeline.tags],
        "doc_md": DOC.format(
            name=pipeline.name,
            description=pipeline.description,
            dataset=pipeline.dataset.name,
            features=pipeline.features,
            model=pipeline.model.name,
            alias=pipeline.model.alias,
            table=pipeline.scores_table,
            retrain_dag=pipeline.retrain_dag_id,
        ),
        "params": {
            "model_version": Param(
                None,
                type=["null", "integer"],
                minimum=1,
                description="Score with this model version instead of the alias's current one.",
            ),
            "force": Param(
                False,
                type="boolean",
                description="Recompute every stage and republish, even when the outputs are unchanged.",
            ),
        },
        "render_template_as_native_obj": True,
        **({"deadline": deadline} if deadline else {}),
    }


GATE_DAY = "{{ ti.xcom_pull(task_ids='drift_gate')['run_date'] }}"


def build_nightly_dag(pipeline: PipelineSettings) -> DAG:
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
    from airflow.sdk import DAG, task

    name = pipeline.name
    sensor = pipeline.sensor
    with DAG(**dag_arguments(pipeline)) as dag:
        model = task(t.resolve_model)(name)
        ready = task.sensor(poke_interval=sensor.poke_interval_s, timeout=sensor.timeout_s, mode=sensor.mode)(
            t.wait_for_partition
        )(name)
        raw_checked = task(t.validate_raw)(name)
        features = task(t.build_features)(name)
        features_checked = task(t.validate_features)(name)
        scored = task(t.score)(name, model)
        scores_checked = task(t.validate_scores)(name, model)
        published = task(t.publish)(
            name, model, raw_checked, features, features_checked, scored, scores_checked
        )
        shadow = task(t.publish_shadow)(name, scored)
        drift = task(t.drift_report)(name, model)
        gate = task(t.drift_gate)(name, model, drift)
        evaluated = task(trigger_rule="none_failed")(t.evaluate)(name, published)
        retrain = task.short_circuit(t.retrain_needed)(name, gate, evaluated)
        # not downstream of the short circuit (which skips all it leads to); none_failed: an
        # upstream skipped (a stage with nothing to do) still gets the page rendered
        health = task(trigger_rule="none_failed")(t.health_page)(name, model)
        # The retrain run's day: the logical date, or the gate's run date for a partition run.
        day = "{{ ds }}" if pipeline.schedule.on == "cron" else GATE_DAY
        logical_date = (
            "{{ logical_date }}" if pipeline.schedule.on == "cron" else GATE_DAY + "T00:00:00+00:00"
        )
        trigger = TriggerDagRunOperator(
            task_id="trigger_retrain",
            trigger_dag_id=pipeline.retrain_dag_id,
            trigger_run_id=f"drift__{day}",
            logical_date=logical_date,
            conf={"evidence": gate, "performance": evaluated},
            skip_when_already_exists=True,
            openlineage_inject_parent_info=False,
        )

        ready >> raw_checked >> features >> features_checked >> scored >> scores_checked >> published
        published >> drift
        gate >> health
        evaluated >> health
        scores_checked >> shadow
        shadow >> evaluated
        retrain >> trigger

    return dag
