"""One retrain DAG per pipeline file in `pipelines/` (airflow.sdk only, no I/O but the YAML)."""

from batchscore.orchestration.retrain_dag import build_retrain_dag
from batchscore.settings import discover_pipelines

for _pipeline in discover_pipelines():
    globals()[_pipeline.retrain_dag_id] = build_retrain_dag(_pipeline)
