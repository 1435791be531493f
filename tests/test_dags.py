"""DAG integrity: the DAG files import cleanly, cheaply, and follow the house conventions."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from batchscore.settings import REPO_ROOT, discover_pipelines

PROBE = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
heavy_before = {m for m in ("pyspark", "xgboost", "great_expectations", "evidently", "onnxruntime", "duckdb") if m in sys.modules}
bag = DagBag(dag_folder=sys.argv[1])
heavy = sorted(m for m in ("pyspark", "xgboost", "great_expectations", "evidently", "onnxruntime", "duckdb", "pandas")
               if m in sys.modules and m not in heavy_before)
dags = {}
for dag_id, dag in bag.dags.items():
    dags[dag_id] = {
        "tags": sorted(dag.tags),
        "tasks": [t.task_id for t in dag.topological_sort()],
        "retries": {t.task_id: t.retries for t in dag.tasks},
        "timeouts": {t.task_id: bool(t.execution_timeout) for t in dag.tasks},
        "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
        "trigger_rules": {t.task_id: getattr(t.trigger_rule, "value", t.trigger_rule) for t in dag.tasks},
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "doc": bool(dag.doc_md),
        "params": sorted(dag.params.keys()),
        "param_defaults": dag.params.dump(),
        "param_types": {k: dag.params.get_param(k).schema.get("type") for k in dag.params},
    }
print(json.dumps({"errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "dags": dags, "heavy": heavy}))
"""


def parse_dags(tmp_path: Path, **extra: str) -> dict:
    lake = tmp_path / "lake-must-not-exist"
    env = {
        **extra,
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "BATCHSCORE_LAKE_URL": str(lake),
        "BATCHSCORE_WAREHOUSE_URL": f"duckdb://{tmp_path / 'wh-must-not-exist.duckdb'}",
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO_ROOT / "dags")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert not lake.exists(), "parsing DAGs touched the lake"
    assert not (tmp_path / "wh-must-not-exist.duckdb").exists(), "parsing DAGs touched the warehouse"
    return json.loads(out.stdout.strip().splitlines()[-1])


def labels_on_partitions(tmp_path: Path) -> Path:
    """The repository's pipelines, churn with `labels.schedule: partition` (an outcomes DAG)."""
    folder = tmp_path / "pipelines"
    folder.mkdir()
    for path in (REPO_ROOT / "pipelines").glob("*.yaml"):
        config = yaml.safe_load(path.read_text())
        if config["name"] == "churn":
            config["labels"]["schedule"] = "partition"
        (folder / path.name).write_text(yaml.safe_dump(config))
    return folder


def test_dag_files_import_cleanly_and_follow_conventions(tmp_path):
    pipelines_dir = labels_on_partitions(tmp_path)
    parsed = parse_dags(tmp_path, BATCHSCORE_PIPELINES_DIR=str(pipelines_dir))
    assert parsed["errors"] == {}
    assert parsed["heavy"] == [], "DAG parsing must not import heavy libraries"
    pipelines = discover_pipelines({"BATCHSCORE_PIPELINES_DIR": str(pipelines_dir)})
    expected = {p.dag_id for p in pipelines} | {p.retrain_dag_id for p in pipelines}
    expected |= {p.outcomes_dag_id for p in pipelines if p.labels.schedule == "partition"}
    assert set(parsed["dags"]) == expected and "batchscore_churn_outcomes" in expected
    for dag_id, dag in parsed["dags"].items():
        assert "batchscore" in dag["tags"], dag_id
        assert all(r >= 1 for r in dag["retries"].values()), f"{dag_id}: every task retries"
        assert all(dag["timeouts"].values()), f"{dag_id}: every task has an execution timeout"
        assert dag["doc"] and dag["max_active_runs"] == 1 and dag["catchup"] is False
        kind = dag_id.rpartition("_")[2]
        assert dag["params"] == {"retrain": ["drift_from"], "outcomes": []}.get(
            kind, ["force", "model_version"]
        )
        if kind not in ("retrain", "outcomes"):  # the UI's "Trigger with config" offers a force checkbox
            assert dag["param_defaults"]["force"] is False and dag["param_types"]["force"] == "boolean"
    assert "batchscore_churn_outcomes" not in parse_dags(tmp_path / "default")["dags"], "opt-in"


def test_nightly_stages_run_in_contract_order(tmp_path):
    dag = parse_dags(tmp_path)["dags"]["batchscore_churn"]
    tasks = dag["tasks"]
    order = [
        "wait_for_partition",
        "validate_raw",
        "build_features",
        "validate_features",
        "score",
        "validate_scores",
        "publish",
        "drift_report",
        "drift_gate",
        "health_page",
    ]
    positions = [tasks.index(t) for t in order]
    assert positions == sorted(positions)
    assert tasks.index("resolve_model") < tasks.index("score")
    assert tasks.index("drift_gate") < tasks.index("retrain_needed") < tasks.index("trigger_retrain")
    # the health page is no descendant of the retrain short circuit (which skips all it leads
    # to) and runs when an upstream stage was skipped
    assert dag["upstream"]["health_page"] == ["drift_gate", "evaluate", "resolve_model"]
    assert dag["trigger_rules"]["health_page"] == "none_failed"


def test_evaluate_follows_both_publishes_and_feeds_the_retrain_decision(tmp_path):
    dag = parse_dags(tmp_path)["dags"]["batchscore_churn"]
    assert dag["upstream"]["evaluate"] == ["publish", "publish_shadow"]
    assert dag["trigger_rules"]["evaluate"] == "none_failed"  # a skipped shadow publish does not block it
    assert dag["upstream"]["retrain_needed"] == ["drift_gate", "evaluate"]


def test_retrain_dag_trains_then_evaluates_then_gates(tmp_path):
    tasks = parse_dags(tmp_path)["dags"]["batchscore_churn_retrain"]["tasks"]
    positions = [
        tasks.index(t) for t in ("wait_for_labels", "train_challenger", "evaluate", "promotion_gate")
    ]
    assert positions == sorted(positions)
