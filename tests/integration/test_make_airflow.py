"""`make airflow` starts Airflow 3's services on SQLite with the repo's DAGs, prints how to log in,
and `make airflow-stop` stops exactly the processes it started."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from batchscore.orchestration.airflow_server import admin_password, process_states, running
from batchscore.settings import REPO_ROOT
from tests.integration.airflow_services import AirflowAPI

pytestmark = pytest.mark.integration

PORT = 18073


def make(target: str, airflow_home, home) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "BATCHSCORE_"))},
        "BATCHSCORE_HOME": str(home),
        "BATCHSCORE_LAKE_URL": str(home / "lake"),
    }
    return subprocess.run(
        ["make", "-s", target, f"AIRFLOW_PORT={PORT}", f"AIRFLOW_HOME={airflow_home}"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )


def test_make_airflow_then_airflow_stop(tmp_path):
    airflow_home = tmp_path / "airflow"
    started = make("airflow", airflow_home, tmp_path)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        pids = running(airflow_home)
        assert set(pids) == {"api-server", "scheduler", "dag-processor", "triggerer"}
        password = admin_password(airflow_home)
        assert password and f"Log in as 'admin' with password '{password}'" in started.stdout
        assert f"Airflow UI: http://127.0.0.1:{PORT}" in started.stdout
        assert (airflow_home / "airflow.db").is_file(), "SQLite metadata under AIRFLOW_HOME"

        api = AirflowAPI(f"http://127.0.0.1:{PORT}", password)
        api.wait_for_dag("batchscore_churn")
        dag = api.get("/api/v2/dags/batchscore_churn")
        assert dag["is_paused"] is True and dag["timetable_summary"] == "0 0 * * *"
        again = make("airflow", airflow_home, tmp_path)
        assert again.returncode != 0 and "already runs" in again.stderr
    finally:
        stopped = make("airflow-stop", airflow_home, tmp_path)
    assert stopped.returncode == 0 and re.search(r"stopped .*scheduler", stopped.stdout), stopped.stdout
    assert running(airflow_home) == {}
    for pid in pids.values():
        # A zombie has exited; only an init that never reaps keeps it listed.
        survivors = {p: s for p, s in (process_states(pid) or {}).items() if s not in "ZX"}
        assert not survivors, f"group {pid} survived make airflow-stop: {survivors}"
