"""Data-aware scheduling for real: with `schedule.on: partition`, announcing a landed partition
as an asset event through Airflow's REST API starts the nightly run for that partition's day
(scheduler, dag-processor and api-server on PostgreSQL, LocalExecutor), which publishes it; with
`labels.schedule: partition`, announcing a label partition runs the outcomes DAG, which writes
the realized performance of the published day those labels refer to, once per day however often
the partition is announced."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from batchscore.orchestration.airflow_server import start, stop
from batchscore.settings import REPO_ROOT, AirflowServerSettings
from tests.conftest import settings_env
from tests.integration.airflow_services import (
    AirflowAPI,
    cli,
    fresh_postgres_database,
    set_admin_password,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DAG_ID, DAY, ROWS, PORT = "batchscore_churn", date(2026, 11, 21), 2000, 18073
OUTCOMES_DAG_ID = "batchscore_churn_outcomes"
LABELED = DAY + timedelta(days=3)  # the seeded labels of DAY land 3 days later, in dt=LABELED


def partition_pipelines(folder: Path) -> Path:
    """Only churn, scheduled on its partitions (raw and labels), retrying after seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO_ROOT / "pipelines" / "churn.yaml").read_text())
    config["schedule"].update(on="partition", retries=3, retry_delay_s=2)
    config["labels"]["schedule"] = "partition"
    (folder / "churn.yaml").write_text(yaml.safe_dump(config))
    return folder


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("partition-schedule")
    pipelines = partition_pipelines(home / "pipelines")
    env = {"BATCHSCORE_PIPELINES_DIR": str(pipelines)}
    # up to LABELED: the raw partitions to DAY and after, and the labels of DAY
    cli(home, "lake", "seed", "--days", "15", "--rows", str(ROWS), "--end-date", LABELED.isoformat(), **env)
    assert "Registered churn_xgb v1 as champion" in cli(
        home, "train", "--pipeline", "churn", "--date", "2026-11-17", **env
    )
    with fresh_postgres_database("bs_assets") as db_url:
        server = AirflowServerSettings(home=home / "airflow", db_url=db_url, port=PORT)
        password = set_admin_password(server.home)
        extra = {**settings_env(home), **env, "BATCHSCORE_SPARK_MASTER": "local[1]"}
        try:
            start(server, ["api-server", "scheduler", "dag-processor"], extra_env=extra)
            api = AirflowAPI(f"http://127.0.0.1:{PORT}", password)
            api.wait_for_dag(DAG_ID)
            yield {"home": home, "api": api}
        finally:
            stop(server.home)
            if (server.home / "logs").is_dir():
                shutil.copytree(
                    server.home / "logs", Path("var/test-artifacts/partition-logs"), dirs_exist_ok=True
                )


def test_announcing_a_partition_runs_and_publishes_its_day(deployment):
    api: AirflowAPI = deployment["api"]
    home: Path = deployment["home"]
    api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    uri = f"file://{home / 'lake'}/raw/customers"
    assets = api.get("/api/v2/assets?uri_pattern=raw/customers")["assets"]
    assert [a["uri"] for a in assets] == [uri], "the DAG's schedule registered the dataset's asset"
    assert api.get(f"/api/v2/dags/{DAG_ID}/dagRuns")["total_entries"] == 0, "nothing runs before"

    # What the landing job does once `raw/customers/dt=2026-11-21/_SUCCESS` is written.
    event = api.post("/api/v2/assets/events", {"asset_id": assets[0]["id"], "partition_key": DAY.isoformat()})
    assert event["partition_key"] == DAY.isoformat()

    runs = api.wait_for_runs(DAG_ID, count=1, timeout_s=900)
    assert [(r["run_type"], r["state"], r["partition_key"]) for r in runs] == [
        ("asset_triggered", "success", DAY.isoformat())
    ], runs
    assert runs[0]["logical_date"] is None
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        published = con.execute("SELECT run_date, row_count, run_id FROM published_slices").fetchall()
    assert published == [(DAY, ROWS, runs[0]["dag_run_id"])]


def realized_rows(home: Path, day: date) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT role, run_id, count(*), max(row_count) FILTER (WHERE metric = 'roc_auc') "
            "FROM model_performance_churn WHERE run_date = ? AND kind = 'realized' GROUP BY 1, 2",
            [day],
        ).fetchall()


def test_announcing_a_label_partition_realizes_the_day_it_refers_to_once(deployment):
    """After the test above published DAY, whose nightly run had none of DAY's labels yet."""
    api: AirflowAPI = deployment["api"]
    home: Path = deployment["home"]
    api.wait_for_dag(OUTCOMES_DAG_ID)
    assert api.get(f"/api/v2/dags/{OUTCOMES_DAG_ID}")["is_paused"] is False, "opted in: not paused"
    assets = api.get("/api/v2/assets?uri_pattern=raw/churn_labels")["assets"]
    assert [a["uri"] for a in assets] == [f"file://{home / 'lake'}/raw/churn_labels"]
    assert realized_rows(home, DAY) == []

    # What the label landing job does once `raw/churn_labels/dt=2026-11-24/_SUCCESS` is written;
    # then once more, as a re-announced (or re-landed) partition would.
    for count in (1, 2):
        api.post("/api/v2/assets/events", {"asset_id": assets[0]["id"], "partition_key": LABELED.isoformat()})
        runs = sorted(
            api.wait_for_runs(OUTCOMES_DAG_ID, count=count, timeout_s=300), key=lambda r: r["run_after"]
        )
        assert [(r["run_type"], r["state"], r["partition_key"]) for r in runs] == [
            ("asset_triggered", "success", LABELED.isoformat())
        ] * count, runs
        # 14 binary metrics (ROC AUC, log loss, Brier, accuracy, 10 calibration deciles) of the
        # `all` segment, over every customer scored on DAY, written by the newest run alone
        assert realized_rows(home, DAY) == [("champion", runs[-1]["dag_run_id"], 14, ROWS)]
    assert api.get(f"/api/v2/dags/{DAG_ID}/dagRuns")["total_entries"] == 1, "labels start no scoring run"
