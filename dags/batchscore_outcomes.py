"""One outcomes DAG per pipeline file whose labels are scheduled on their partitions
(`labels.schedule: partition`; airflow.sdk only, no I/O but the YAML)."""

from batchscore.orchestration.outcomes_dag import build_outcomes_dag
from batchscore.settings import discover_pipelines

for _pipeline in discover_pipelines():
    if _pipeline.labels.schedule == "partition":
        globals()[_pipeline.outcomes_dag_id] = build_outcomes_dag(_pipeline)
