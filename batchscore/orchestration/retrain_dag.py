"""Builds the retrain DAG of one pipeline: a list of tasks and their wiring.

Triggered by the nightly DAG's drift gate (conf: `{"evidence": <the gate's result>}`) or by
hand (UI or `airflow dags trigger`, optionally with the `drift_from` param). The task bodies
live in `retrain_tasks`. Parsing reads no data and imports no Spark, XGBoost or Evidently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from batchscore.orchestration import retrain_tasks as t
from batchscore.orchestration.task_support import task_defaults
from batchscore.settings import PipelineSettings

if TYPE_CHECKING:
    from airflow.sdk import DAG

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


def dag_arguments(pipeline: PipelineSettings) -> dict[str, Any]:
    """The retrain DAG's triggers-only schedule, retry policy, docs and params."""
    from airflow.sdk import Param

    schedule = pipeline.schedule
    return {
        "dag_id": pipeline.retrain_dag_id,
        "description": f"Retrain, evaluate and gate the promotion of {pipeline.model.name}",
        "schedule": None,
        "start_date": datetime.combine(schedule.start_date, datetime.min.time(), tzinfo=UTC),
        "catchup": False,
        "max_active_runs": 1,
        # Runs only when the drift gate (or an operator) triggers it; paused, triggers would queue.
        "is_paused_upon_creation": False,
        "default_args": task_defaults(pipeline, backoff=False),
        "tags": ["batchscore", "retrain", *pipeline.tags],
        "doc_md": DOC.format(
            name=pipeline.name,
            labels=pipeline.labels.dataset,
            features=pipeline.features,
            model=pipeline.model.name,
            auto=pipeline.promotion.auto,
        ),
        "params": {
            "drift_from": Param(
                None,
                type=["null", "string"],
                format="date",
                description="Train on labelled days from this date on (default: the drift gate's day, or all).",
            )
        },
        "render_template_as_native_obj": True,
    }


def build_retrain_dag(pipeline: PipelineSettings) -> DAG:
    from airflow.sdk import DAG, task

    name = pipeline.name
    with DAG(**dag_arguments(pipeline)) as dag:
        labels_ready = task.sensor(
            poke_interval=pipeline.sensor.poke_interval_s,
            timeout=(pipeline.training.retrain_after_days + 2) * 86_400,
            mode="reschedule",
        )(t.wait_for_labels)(name)
        trained = task(t.train_challenger)(name)
        evaluated = task(t.evaluate)(name, trained)
        task(t.promotion_gate)(name, evaluated)
        labels_ready >> trained

    return dag
