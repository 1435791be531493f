"""One nightly scoring DAG per pipeline file in `pipelines/` (airflow.sdk only, no I/O but the YAML)."""

from batchscore.orchestration.nightly_dag import build_nightly_dag
from batchscore.settings import discover_pipelines

for _pipeline in discover_pipelines():
    globals()[_pipeline.dag_id] = build_nightly_dag(_pipeline)
