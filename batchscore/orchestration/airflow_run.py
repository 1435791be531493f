"""Run a pipeline's DAG for one logical date as a real Airflow DagRun (`dag.test()`).

The embedded default: SQLite metadata under `var/airflow`, tasks run in this process
(so one Spark session serves every task, warmed up while the first tasks run). Airflow's own logs go to
`var/airflow/dag_test.log`; the terminal shows one line per finished task.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from batchscore.errors import BadInput
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


def use_embedded_airflow(settings: Settings) -> dict[str, str]:
    """Point this process at the embedded Airflow, before anything imports Airflow: its
    configuration (the DAGs folder its bundle serializes from) is read once, at first import,
    and an S3 lake whose credentials are an Airflow connection imports it early."""
    env = airflow_environment(settings.platform.home)
    os.environ.update(env)
    return env


def ensure_metadata_db(env: dict[str, str]) -> None:
    """Create or upgrade the Airflow metadata database (idempotent, quiet)."""
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    version = importlib.metadata.version("apache-airflow")
    marker = Path(env["AIRFLOW_HOME"]) / f".batchscore-db-migrated-{version}"
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
    dag_id: str | None = None,
    conf: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the pipeline's DAG (the nightly one unless `dag_id` names another, e.g. its retrain
    DAG) for `run_date`; returns state, run id, per-task results and errors."""
    env = use_embedded_airflow(settings)
    warnings.filterwarnings("ignore")  # Airflow's deprecation chatter; task errors still surface
    ensure_metadata_db(env)

    from airflow.dag_processing.dagbag import DagBag

    dag_id = dag_id or settings.pipeline.dag_id
    bag = DagBag(dag_folder=env["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise RuntimeError(f"no DAG {dag_id} in {env['AIRFLOW__CORE__DAGS_FOLDER']}")

    logical = datetime(run_date.year, run_date.month, run_date.day, tzinfo=UTC)
    if dag.start_date is not None and logical < dag.start_date:
        raise BadInput(
            f"{run_date} is before {dag_id}'s start date {dag.start_date.date()} (schedule.start_date in "
            f"the pipeline file): Airflow would create no task for it; nothing was run"
        )
    if dag_id == settings.pipeline.dag_id:
        from batchscore.orchestration import warmup

        warmup.start(settings.platform)  # overlaps the DB sync and the tasks before Spark's

    # Airflow 3.3.2's dag.test() looks the DAG's deadline alerts up in the metadata DB by id
    # but hands it the alert objects ("'dict' object has no attribute 'hex'"); a one-shot run
    # has no triggerer to fire one anyway. The scheduled DAG (`make airflow`) keeps its deadline.
    dag.deadline = None

    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType

    conf = {**(conf or {}), **({"model_version": model_version} if model_version else {})} or None
    run_id = DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=logical, run_after=logical)
    log_file = Path(env["AIRFLOW_HOME"]) / "dag_test.log"
    started = time.perf_counter()
    watcher = TaskProgress(dag_id, run_id, datetime.now(UTC), on_task)
    watcher.start()
    try:
        with quiet_airflow_logs(log_file):
            dag_run = dag.test(run_after=logical, logical_date=logical, run_conf=conf)
    finally:
        watcher.finish()
    return collect_outcome(dag_run, dag, time.perf_counter() - started)


FINISHED = {"success", "failed", "upstream_failed", "skipped", "up_for_retry"}


def task_result(session: Any, dag_id: str, run_id: str, task_id: str) -> Any:
    """A task's return value (its `return_value` XCom), or None."""
    from airflow.models.xcom import XComModel

    query = XComModel.get_many(run_id=run_id, key="return_value", dag_ids=dag_id, task_ids=task_id)
    row = session.scalars(query).first()
    return XComModel.deserialize_value(row) if row is not None else None


def _state(value: Any) -> str:
    return str(getattr(value, "value", value))


class TaskProgress(threading.Thread):
    """Reports each task of a running DagRun as it finishes, by polling the metadata database."""

    def __init__(self, dag_id: str, run_id: str, since: datetime, on_task: TaskCallback | None):
        super().__init__(daemon=True)
        self.dag_id, self.run_id, self.since, self.on_task = dag_id, run_id, since, on_task
        self.reported: set[tuple[str, int, str]] = set()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            self.poll()

    def finish(self) -> None:
        self.stopping.set()
        self.join(timeout=10)
        self.poll()

    def poll(self) -> None:
        if self.on_task is None:
            return
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        try:
            with create_session() as session:
                rows = session.execute(
                    select(
                        TaskInstance.task_id,
                        TaskInstance.try_number,
                        TaskInstance.state,
                        TaskInstance.end_date,
                    )
                    .where(TaskInstance.dag_id == self.dag_id, TaskInstance.run_id == self.run_id)
                    .order_by(TaskInstance.end_date)
                ).all()
                for task_id, try_number, state, end in rows:
                    state = _state(state)
                    key = (task_id, try_number, state)
                    finished_now = state in FINISHED and (end is None or end >= self.since)
                    if finished_now and key not in self.reported:
                        self.reported.add(key)
                        result = (
                            task_result(session, self.dag_id, self.run_id, task_id)
                            if state == "success"
                            else None
                        )
                        self.on_task(task_id, state, result)
        except Exception as exc:  # progress display must never break the run itself
            logging.getLogger(__name__).debug("progress poll failed: %s", exc)


def collect_outcome(dag_run: Any, dag: Any, seconds: float) -> dict[str, Any]:
    """Per-task states and return values of a finished DagRun, in the DAG's topological order."""
    from airflow.utils.session import create_session

    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    with create_session() as session:
        tis = {ti.task_id: ti for ti in dag_run.get_task_instances(session=session)}
        for task in dag.topological_sort():
            ti = tis.get(task.task_id)
            state = _state(ti.state) if ti else "missing"
            results[task.task_id] = task_result(session, dag.dag_id, dag_run.run_id, task.task_id)
            if state != "success":
                errors[task.task_id] = state
    return {
        "state": _state(dag_run.state),
        "run_id": dag_run.run_id,
        "seconds": seconds,
        "results": results,
        "errors": errors,
    }
