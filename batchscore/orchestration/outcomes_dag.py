"""Builds the outcomes DAG of one pipeline (`labels.schedule: partition`): when a label
partition is announced as an asset event, the realized performance of the days it refers to.

Scheduled by a `PartitionedAssetTimetable` on the label dataset's asset
(`batchscore.raw.<labels dataset>`, see `assets.py`); the run's day is the partition key, the
label partition's arrival date. Parsing reads no data and imports no Spark or Evidently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from batchscore.orchestration.assets import labels_schedule
from batchscore.orchestration.run_context import RunContext
from batchscore.orchestration.task_support import stage, task_defaults
from batchscore.settings import PipelineSettings

if TYPE_CHECKING:
    from airflow.sdk import DAG

DOC = """
### batchscore outcomes: `{name}`

Runs when a partition of `{labels}` is announced (an asset event on `batchscore.raw.{labels}`
with its arrival date as the partition key, e.g.
`POST /api/v2/assets/events {{"asset_id": <id>, "partition_key": "2026-11-24"}}`).
`realize` writes the realized performance (`kind = realized`, `model_performance_{name}`) of
every day whose labels landed in the `{lookback}` days up to that date, joined to the scores
published for those days; each day's rows are replaced, so a second announcement of the same
partition leaves one set. The nightly `evaluate` of `{nightly}` writes the same rows for its
own day, and keeps the estimates, stability, alerts, gates and retrain trigger.
"""


@stage()
def realize(run: RunContext) -> dict[str, Any]:
    """The realized rows as of the announced label partition's day (`jobs.evaluate.run_landed`)."""
    from jobs import evaluate

    return evaluate.run_landed(run.settings, run.run_date, run_id=run.run_id)


def dag_arguments(pipeline: PipelineSettings) -> dict[str, Any]:
    """The outcomes DAG's label-partition schedule, retry policy and docs."""
    schedule = pipeline.schedule
    return {
        "dag_id": pipeline.outcomes_dag_id,
        "description": f"Realized performance of {pipeline.model.name} as {pipeline.labels.dataset} lands",
        "schedule": labels_schedule(pipeline),
        "start_date": datetime.combine(schedule.start_date, datetime.min.time(), tzinfo=UTC),
        "catchup": False,
        "max_active_runs": 1,
        # Opted into by `labels.schedule: partition`; paused, announced partitions would wait.
        "is_paused_upon_creation": False,
        "default_args": task_defaults(pipeline),
        "tags": ["batchscore", "outcomes", *pipeline.tags],
        "doc_md": DOC.format(
            name=pipeline.name,
            labels=pipeline.labels.dataset,
            lookback=pipeline.performance.lookback_days,
            nightly=pipeline.dag_id,
        ),
    }


def build_outcomes_dag(pipeline: PipelineSettings) -> DAG:
    from airflow.sdk import DAG, task

    with DAG(**dag_arguments(pipeline)) as dag:
        task(realize)(pipeline.name)
    return dag
