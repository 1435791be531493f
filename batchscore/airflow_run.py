"""Run a pipeline's DAG for one logical date as a real Airflow DagRun (`dag.test()`).

The embedded default: SQLite metadata under `var/airflow`, tasks run in this process
(so one Spark session serves every task). Airflow's own logs go to
`var/airflow/dag_test.log`; the terminal shows one line per finished task.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from batchscore.settings import REPO_ROOT, Settings

TaskCallback = Callable[[str, str, Any], None]


def airflow_environment(home: Path) -> dict[str, str]:
    """Settings for an embedded Airflow (SQLite, no examples, the repo's DAGs)."""
    airflow_home = Path(os.environ.get("AIRFLOW_HOME", home / "var" / "airflow"))
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
    }


def ensure_metadata_db(env: dict[str, str]) -> None:
    """Create or upgrade the Airflow metadata database (idempotent, quiet)."""
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    marker = Path(env["AIRFLOW_HOME"]) / ".batchscore-db-migrated"
    if marker.exists():
        return
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run(
        [str(airflow), "db", "migrate"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    marker.touch()


@contextlib.contextmanager
def quiet_airflow_logs(log_file: Path) -> Iterator[None]:
    """Send Airflow's log records to a file instead of the terminal for the duration."""
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = [handler]
    try:
        yield
    finally:
        root.handlers[:] = saved
        handler.close()


def run_pipeline(
    settings: Settings,
    run_date: date,
    model_version: int | None = None,
    on_task: TaskCallback | None = None,
) -> dict[str, Any]:
    """Run the pipeline's DAG for `run_date`; returns state, run id, per-task results and errors."""
    env = airflow_environment(settings.platform.home)
    os.environ.update(env)
    warnings.filterwarnings("ignore")  # Airflow's deprecation chatter; task errors still surface
    ensure_metadata_db(env)

    from airflow.dag_processing.dagbag import DagBag

    dag_id = settings.pipeline.dag_id
    bag = DagBag(dag_folder=env["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise RuntimeError(f"no DAG {dag_id} in {env['AIRFLOW__CORE__DAGS_FOLDER']}")

    logical = datetime(run_date.year, run_date.month, run_date.day, tzinfo=UTC)
    conf = {"model_version": model_version} if model_version else None
    started = time.perf_counter()
    log_file = Path(env["AIRFLOW_HOME"]) / "dag_test.log"
    with quiet_airflow_logs(log_file):
        dag_run = dag.test(run_after=logical, logical_date=logical, run_conf=conf)
    return collect_outcome(dag_run, dag, time.perf_counter() - started, on_task)


def collect_outcome(dag_run: Any, dag: Any, seconds: float, on_task: TaskCallback | None) -> dict[str, Any]:
    """Per-task states and return values of a finished DagRun, in the DAG's topological order."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    order = [t.task_id for t in dag.topological_sort()]
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    with create_session() as session:
        tis = {ti.task_id: ti for ti in dag_run.get_task_instances(session=session)}
        for task_id in order:
            ti = tis.get(task_id)
            state = str(ti.state.value if hasattr(ti.state, "value") else ti.state) if ti else "missing"
            query = XComModel.get_many(
                run_id=dag_run.run_id, key="return_value", dag_ids=dag.dag_id, task_ids=task_id
            )
            row = session.scalars(query).first()
            results[task_id] = XComModel.deserialize_value(row) if row is not None else None
            if state != "success":
                errors[task_id] = state
            if on_task:
                on_task(task_id, state, results[task_id])
    state = str(dag_run.state.value if hasattr(dag_run.state, "value") else dag_run.state)
    return {
        "state": state,
        "run_id": dag_run.run_id,
        "seconds": seconds,
        "results": results,
        "errors": errors,
    }
