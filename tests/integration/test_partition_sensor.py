"""The partition sensor through real Airflow: a late partition is waited for, a missing one
times out. Runs `wait_for_partition` and `validate_raw` of the real DAG (dag.test) in a
subprocess, with a copy of pipelines/churn.yaml whose sensor waits seconds instead of hours."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest
import yaml

from batchscore.examples.seed import SeedSpec, customers_snapshot, write_partition
from batchscore.settings import REPO_ROOT
from batchscore.storage.lake import Lake
from tests.conftest import settings_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DAY, EARLIER = date(2026, 11, 21), date(2026, 11, 20)
POKE_S, TIMEOUT_S = 1, 8

RUN_SENSOR = """
import json, os, sys, threading, time
from datetime import UTC, date, datetime
from pathlib import Path

from batchscore.orchestration.airflow_run import airflow_environment, ensure_metadata_db, quiet_airflow_logs
from batchscore.settings import load_settings

day, land_late = date.fromisoformat(sys.argv[1]), sys.argv[2] == "late"
settings = load_settings("churn")
env = airflow_environment(settings.platform.home) | {"AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}
os.environ.update(env)
ensure_metadata_db(env)

from airflow.dag_processing.dagbag import DagBag

dag = DagBag(dag_folder=env["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag("batchscore_churn")
subset = dag.partial_subset(task_ids=["wait_for_partition", "validate_raw"], include_upstream=False)
from airflow.models.taskreschedule import TaskReschedule
from airflow.utils.session import create_session
from sqlalchemy import func, select


def reschedules():
    with create_session() as session:
        return session.scalar(select(func.count()).select_from(TaskReschedule))


before = reschedules()


def land_once_the_sensor_has_waited():
    # The upstream job lands the partition only after the sensor has poked and rescheduled.
    from batchscore.storage.lake import Lake
    from batchscore.examples.seed import SeedSpec, customers_snapshot, write_partition

    while reschedules() == before:
        time.sleep(0.2)
    table, _ = customers_snapshot(SeedSpec(rows=300), day)
    write_partition(Lake(settings.platform.lake_url), "customers", day, table)


if land_late:
    threading.Thread(target=land_once_the_sensor_has_waited, daemon=True).start()
logical = datetime(day.year, day.month, day.day, tzinfo=UTC)
with quiet_airflow_logs(Path(env["AIRFLOW_HOME"]) / "sensor_test.log"):
    run = subset.test(run_after=logical, logical_date=logical)
states = {}
for ti in run.get_task_instances():
    seconds = (ti.end_date - ti.start_date).total_seconds() if ti.end_date and ti.start_date else None
    states[ti.task_id] = {"state": str(getattr(ti.state, "value", ti.state)), "seconds": seconds}
outcome = {"run": str(getattr(run.state, "value", run.state)), "tasks": states}
print(json.dumps(outcome | {"reschedules": reschedules() - before}))
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("sensor")
    pipeline = yaml.safe_load((REPO_ROOT / "pipelines" / "churn.yaml").read_text())
    pipeline["sensor"] = {"poke_interval_s": POKE_S, "timeout_s": TIMEOUT_S, "mode": "reschedule"}
    pipeline["schedule"] |= {"retries": 0}
    # dag.test() on Airflow 3.3.2 cannot run a DAG with a deadline alert (`batchscore run` drops it)
    pipeline["schedule"].pop("publish_by", None)
    (home / "pipelines").mkdir()
    (home / "pipelines" / "churn.yaml").write_text(yaml.safe_dump(pipeline))
    return home


def run_sensor(home: Path, day: date, land: str) -> dict:
    env = {
        **os.environ,
        **settings_env(home, BATCHSCORE_PIPELINES_DIR=str(home / "pipelines")),
        "AIRFLOW_HOME": str(home / "airflow"),
    }
    script = home / "run_sensor.py"  # a file, not `python -c`: under -c a task import exits with 0
    script.write_text(RUN_SENSOR)
    result = subprocess.run(
        [sys.executable, str(script), day.isoformat(), land],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO_ROOT,
    )
    (home / f"sensor-{day.isoformat()}.out").write_text(result.stdout + result.stderr)  # for a post-mortem
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_missing_partition_times_out_and_never_falls_back(home):
    lake = Lake(str(home / "lake"))
    table, _ = customers_snapshot(SeedSpec(rows=300), EARLIER)
    write_partition(lake, "customers", EARLIER, table)  # yesterday's is there; today's never comes

    outcome = run_sensor(home, DAY, land="never")

    assert outcome["run"] == "failed", outcome
    assert outcome["tasks"]["wait_for_partition"]["state"] == "failed"
    assert outcome["reschedules"] >= 2, "it kept poking until the timeout"
    assert outcome["tasks"]["validate_raw"]["state"] == "upstream_failed"
    assert not (lake.root / "reports" / "validation").exists(), "nothing was validated, not even yesterday"
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        runs = con.execute("SELECT run_date, status, error FROM scoring_runs").fetchall()
    assert len(runs) == 1 and runs[0][:2] == (DAY, "failed")
    assert re.match(
        rf"wait_for_partition: Sensor has timed out; run duration of [0-9.]+ seconds exceeds the specified "
        rf"timeout of {TIMEOUT_S}",
        runs[0][2],
    )


def test_late_partition_is_waited_for_then_validated(home):
    lake = Lake(str(home / "lake"))
    late = date(2026, 11, 22)

    outcome = run_sensor(home, late, land="late")

    assert outcome["run"] == "success", outcome
    assert outcome["tasks"]["wait_for_partition"]["state"] == "success"
    assert outcome["reschedules"] >= 1, "the sensor found nothing at first and waited"
    assert outcome["tasks"]["validate_raw"]["state"] == "success"
    report = json.loads((lake.reports_dir("validation", "churn", late, "raw") / "result.json").read_text())
    assert report["outcome"]["success"] is True and report["outcome"]["rows"] == 300
    assert report["outcome"]["partition"].endswith(f"customers/dt={late.isoformat()}")
