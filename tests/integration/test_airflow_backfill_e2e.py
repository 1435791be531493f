"""Airflow as services for real: api-server, scheduler and dag-processor on a fresh PostgreSQL
metadata database with LocalExecutor; three dates backfilled through the REST API v2; then the
UI in headless Chromium shows the three successful runs in the DAG's grid."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from batchscore.orchestration.airflow_server import start, stop
from batchscore.settings import REPO_ROOT, AirflowServerSettings
from tests.conftest import settings_env
from tests.integration.airflow_services import (
    NIGHTLY_TASKS_SUCCEEDING_WITHOUT_DRIFT,
    AirflowAPI,
    cli,
    fresh_postgres_database,
    set_admin_password,
)
from tests.integration.outside_training import train_xgboost, training_frame

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DAG_ID = "batchscore_churn"
DELIVERIES_DAG_ID = "batchscore_deliveries"
DATES = [date(2026, 11, 10), date(2026, 11, 11), date(2026, 11, 12)]
ROWS = 2000
PORT = 18071
ARTIFACTS = Path(os.environ.get("BATCHSCORE_TEST_ARTIFACTS", "var/test-artifacts")).resolve()


def quick_retry_pipelines(folder: Path) -> Path:
    """The repo's pipeline files with retries after seconds instead of minutes."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted((REPO_ROOT / "pipelines").glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        config["schedule"].update(retries=4, retry_delay_s=2)
        (folder / path.name).write_text(yaml.safe_dump(config))
    return folder


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, spark) -> Iterator[dict[str, Any]]:
    """A seeded lake with a champion for churn and an imported one for deliveries (trained
    outside batchscore), and Airflow services on PostgreSQL serving the repo's DAGs."""
    home = tmp_path_factory.mktemp("airflow-services")
    pipelines = quick_retry_pipelines(home / "pipelines")
    cli(home, "lake", "seed", "--days", "12", "--rows", str(ROWS), "--end-date", DATES[-1].isoformat())
    assert "Registered churn_xgb v1 as champion" in cli(
        home, "train", "--pipeline", "churn", "--date", "2026-11-09"
    )
    end = DATES[-1].isoformat()
    cli(
        home, "lake", "seed", "--example", "deliveries", "--days", "8", "--rows", str(ROWS), "--end-date", end
    )
    handed_over = train_xgboost(training_frame(spark, home / "lake"), home)
    assert "deliveries_xgb v1" in cli(
        home,
        "models",
        "import",
        "--pipeline",
        "deliveries",
        "--model",
        str(handed_over),
        "--alias",
        "champion",
    )
    with fresh_postgres_database() as db_url:
        server = AirflowServerSettings(home=home / "airflow", db_url=db_url, port=PORT)
        password = set_admin_password(server.home)
        extra = {
            **settings_env(home),
            "BATCHSCORE_PIPELINES_DIR": str(pipelines),
            "BATCHSCORE_SPARK_MASTER": "local[1]",
            # Only the backfill creates runs: no scheduled run for "yesterday" by wall clock.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
        }
        try:
            start(server, ["api-server", "scheduler", "dag-processor"], extra_env=extra)
            api = AirflowAPI(f"http://127.0.0.1:{PORT}", password)
            api.wait_for_dag(DAG_ID)
            api.wait_for_dag(DELIVERIES_DAG_ID)
            yield {"home": home, "server": server, "api": api, "password": password, "db_url": db_url}
        finally:
            stop(server.home)
            logs = server.home / "logs"
            if logs.is_dir():
                shutil.copytree(logs, ARTIFACTS / "airflow-backfill-logs", dirs_exist_ok=True)


@pytest.fixture(scope="module")
def backfilled(deployment) -> list[dict[str, Any]]:
    api: AirflowAPI = deployment["api"]
    api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    backfill = api.post(
        "/api/v2/backfills",
        {
            "dag_id": DAG_ID,
            "from_date": f"{DATES[0].isoformat()}T00:00:00Z",
            "to_date": f"{DATES[-1].isoformat()}T00:00:00Z",
            # All three at once (2 cores). DuckDB takes one writing process at a time: a task that
            # meets another's lock fails that attempt and is retried (after 2s in this test).
            "max_active_runs": 3,
        },
    )
    assert backfill["dag_id"] == DAG_ID
    return api.wait_for_runs(DAG_ID, count=len(DATES), timeout_s=1500)


def test_backfill_through_the_rest_api_publishes_three_days(deployment, backfilled):
    api: AirflowAPI = deployment["api"]
    failed = {
        r["dag_run_id"]: api.task_states(DAG_ID, r["dag_run_id"])
        for r in backfilled
        if r["state"] != "success"
    }
    assert not failed, f"failed runs: {failed}"
    assert [r["logical_date"][:10] for r in backfilled] == [d.isoformat() for d in DATES]
    assert {r["run_type"] for r in backfilled} == {"backfill"}
    for run in backfilled:
        states = api.task_states(DAG_ID, run["dag_run_id"])
        # No drift on these days: the gate passes and the retrain trigger is short-circuited.
        assert states.pop("trigger_retrain") == "skipped", states
        assert set(states) == NIGHTLY_TASKS_SUCCEEDING_WITHOUT_DRIFT and set(states.values()) == {
            "success"
        }, states

    with duckdb.connect(str(deployment["home"] / "warehouse.duckdb"), read_only=True) as con:
        per_day = con.execute(
            "SELECT run_date, count(*), count(DISTINCT customer_id), min(score) >= 0, max(score) <= 1, "
            "min(run_id), max(model_version) FROM scores_churn GROUP BY run_date ORDER BY run_date"
        ).fetchall()
        runs = con.execute(
            "SELECT run_date, status, rows_in, rows_out, model_version, run_id FROM scoring_runs ORDER BY run_date"
        ).fetchall()
        gates = con.execute(
            "SELECT run_date, decision FROM model_events WHERE event = 'drift_gate' ORDER BY run_date"
        ).fetchall()
    run_ids = {r["logical_date"][:10]: r["dag_run_id"] for r in backfilled}
    assert per_day == [(d, ROWS, ROWS, True, True, run_ids[d.isoformat()], 1) for d in DATES]
    assert runs == [(d, "published", ROWS, ROWS, 1, run_ids[d.isoformat()]) for d in DATES]
    assert [g[0] for g in gates] == DATES


def test_a_regression_pipeline_with_string_keys_backfills_like_churn(deployment, backfilled):
    """deliveries (an imported regression model, string keys) backfilled the same way."""
    api: AirflowAPI = deployment["api"]
    api.patch(f"/api/v2/dags/{DELIVERIES_DAG_ID}", {"is_paused": False})
    days = DATES[1:]
    api.post(
        "/api/v2/backfills",
        {
            "dag_id": DELIVERIES_DAG_ID,
            "from_date": f"{days[0].isoformat()}T00:00:00Z",
            "to_date": f"{days[-1].isoformat()}T00:00:00Z",
            "max_active_runs": 2,
        },
    )
    runs = api.wait_for_runs(DELIVERIES_DAG_ID, count=len(days), timeout_s=1200)
    failed = {
        r["dag_run_id"]: api.task_states(DELIVERIES_DAG_ID, r["dag_run_id"])
        for r in runs
        if r["state"] != "success"
    }
    assert not failed, f"failed runs: {failed}"
    with duckdb.connect(str(deployment["home"] / "warehouse.duckdb"), read_only=True) as con:
        per_day = con.execute(
            "SELECT run_date, count(*), count(DISTINCT shipment_id), min(starts_with(shipment_id, 'SHP-')), "
            "max(model_version) FROM scores_deliveries GROUP BY run_date ORDER BY run_date"
        ).fetchall()
    assert per_day == [(d, ROWS, ROWS, True, 1) for d in days]


def test_the_ui_grid_shows_the_three_successful_runs(deployment, backfilled):
    from tests.integration.browser import chromium, log_in, successful_runs_in_grid

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as driver:
        log_in(driver, f"http://127.0.0.1:{PORT}", "admin", deployment["password"])
        shown = successful_runs_in_grid(
            driver,
            f"http://127.0.0.1:{PORT}",
            DAG_ID,
            expected=len(DATES),
            # The first and the last stage of each run: the grid shows every run and its outcome.
            checked=frozenset({"resolve_model", "publish", "drift_gate"}),
        )
        driver.save_screenshot(str(ARTIFACTS / "airflow-grid.png"))
    assert shown == sorted(r["dag_run_id"] for r in backfilled)
