"""CeleryExecutor for real: api-server, scheduler, dag-processor and a Celery worker on the local
Redis (DB 7) and a fresh PostgreSQL metadata database run one nightly DagRun."""

from __future__ import annotations

import socket
from datetime import date

import duckdb
import pytest

from batchscore.orchestration.airflow_server import log_tail, start, stop
from batchscore.settings import AirflowServerSettings
from tests.conftest import settings_env
from tests.integration.airflow_services import (
    NIGHTLY_TASKS_SUCCEEDING_WITHOUT_DRIFT,
    AirflowAPI,
    cli,
    fresh_postgres_database,
    set_admin_password,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DAG_ID = "batchscore_churn"
DAY = date(2026, 11, 12)
ROWS = 2000
PORT = 18092
BROKER = "redis://127.0.0.1:6379/7"


def redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError:
        return False
    return True


def test_a_celery_worker_runs_the_nightly_dag(tmp_path):
    assert redis_up(), "Redis is not answering on 127.0.0.1:6379 (.ci/run starts it when it is down)"
    home = tmp_path
    cli(home, "lake", "seed", "--days", "10", "--rows", str(ROWS), "--end-date", DAY.isoformat())
    cli(home, "train", "--pipeline", "churn", "--date", "2026-11-09")
    with fresh_postgres_database() as db_url:
        server = AirflowServerSettings(
            home=home / "airflow",
            db_url=db_url,
            port=PORT,
            executor="CeleryExecutor",
            celery_broker_url=BROKER,
        )
        password = set_admin_password(server.home)
        extra = {
            **settings_env(home),
            "BATCHSCORE_SPARK_MASTER": "local[1]",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        }
        try:
            started = start(server, ["api-server", "scheduler", "dag-processor"], extra_env=extra)
            assert "celery-worker" in started
            api = AirflowAPI(f"http://127.0.0.1:{PORT}", password)
            api.wait_for_dag(DAG_ID)
            api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
            api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": f"{DAY.isoformat()}T00:00:00Z"})
            (run,) = api.wait_for_runs(DAG_ID, count=1, timeout_s=900)
            tis = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances")[
                "task_instances"
            ]
            worker_log = log_tail(server.home, "celery-worker", chars=200_000)
        finally:
            stop(server.home)

    assert run["state"] == "success", {t["task_id"]: t["state"] for t in tis}
    states = {t["task_id"]: t["state"] for t in tis}
    assert states.pop("trigger_retrain") == "skipped", states
    assert set(states) == NIGHTLY_TASKS_SUCCEEDING_WITHOUT_DRIFT and set(states.values()) == {"success"}, (
        states
    )
    assert {t["executor"] for t in tis} <= {"CeleryExecutor", None}
    assert {t["queue"] for t in tis} == {"default"}
    for task_id in ("build_features", "score", "publish"):
        assert f"task_id={task_id}" in worker_log, f"the Celery worker ran {task_id}"
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        published = con.execute("SELECT count(*), min(run_id), max(run_date) FROM scores_churn").fetchone()
        runs = con.execute("SELECT status, rows_out FROM scoring_runs").fetchall()
    assert published == (ROWS, run["dag_run_id"], DAY)
    assert runs == [("published", ROWS)]
