"""Spark standalone cluster mode: a master and two workers from pyspark's own distribution on
loopback; the unchanged job modules run on it (build_features through the
BATCHSCORE_SPARK_MASTER switch, score through spark-submit) with code and model shipped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from batchscore.compute.spark import package_code
from batchscore.settings import REPO_ROOT, load_settings
from tests.conftest import settings_env
from tests.integration.airflow_services import cli

pytestmark = pytest.mark.integration

MASTER_PORT, MASTER_UI = 18077, 18078
WORKERS = [(18074, 18076), (18075, 18079)]
DRIVER_PORT, BLOCK_MANAGER_PORT = 18088, 18090
MASTER = f"spark://127.0.0.1:{MASTER_PORT}"
DAY = date(2026, 11, 21)
ROWS = 2000
BIN = Path(sys.executable).parent


def spark_env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_MEMORY": "256m",
        "SPARK_LOG_DIR": str(work / "logs"),
        "PYSPARK_PYTHON": sys.executable,
    }


def cluster_state() -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{MASTER_UI}/json/", timeout=5) as response:
        return dict(json.load(response))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Path]:
    """A standalone master and two 1-core, 768 MB workers; stopped (whole process groups) after."""
    work = tmp_path_factory.mktemp("spark-cluster")
    env = spark_env(work)
    spark_class = str(BIN / "spark-class")
    commands = [
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
         "--port", str(MASTER_PORT), "--webui-port", str(MASTER_UI)],
    ] + [
        [spark_class, "org.apache.spark.deploy.worker.Worker", MASTER, "--host", "127.0.0.1",
         "--port", str(port), "--webui-port", str(ui), "--cores", "1", "--memory", "768m",
         "--work-dir", str(work / f"worker-{port}")]
        for port, ui in WORKERS
    ]  # fmt: skip
    processes = []
    try:
        for i, command in enumerate(commands):
            log = (work / f"daemon-{i}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
            log.close()
        deadline = time.monotonic() + 120
        while True:
            try:
                alive = [w for w in cluster_state().get("workers", []) if w["state"] == "ALIVE"]
                if len(alive) == len(WORKERS):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (work / "daemon-0.log").read_text()[-3000:]
            assert all(p.poll() is None for p in processes), "a Spark daemon exited"
            time.sleep(1)
        yield work
    finally:
        for process in reversed(processes):
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_the_job_modules_run_unchanged_on_a_standalone_cluster(cluster, tmp_path):
    home = tmp_path
    cli(home, "lake", "seed", "--days", "8", "--rows", str(ROWS), "--end-date", DAY.isoformat())
    assert "Registered churn_xgb v1 as champion" in cli(
        home, "train", "--pipeline", "churn", "--date", "2026-11-18"
    )
    code = package_code(tmp_path / "dist" / "batchscore.zip")
    env = {**spark_env(cluster), **settings_env(home)}
    spark_conf = {
        "spark.executor.memory": "512m",
        "spark.executor.cores": "1",
        "spark.cores.max": "2",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.port": str(DRIVER_PORT),
        "spark.blockManager.port": str(BLOCK_MANAGER_PORT),
    }

    # churn has a quarantine: validate_raw's verdict (in process, no Spark) comes first, as in the DAG
    gate = ["jobs.validate", "--pipeline", "churn", "--date", DAY.isoformat(), "--stage", "raw"]
    run([sys.executable, "-m", *gate], env)

    # 1. The config switch: the job's own SparkSession connects to the cluster and ships the zip.
    switch = {
        **env,
        "BATCHSCORE_SPARK_MASTER": MASTER,
        "BATCHSCORE_SPARK_EXECUTOR_MEMORY": "512m",
        "BATCHSCORE_SPARK_PY_FILES": str(code),
    }
    run(
        [sys.executable, "-m", "jobs.build_features", "--pipeline", "churn", "--date", DAY.isoformat()],
        switch,
    )

    # 2. spark-submit: the same module file, code as --py-files.
    confs = [arg for key, value in spark_conf.items() for arg in ("--conf", f"{key}={value}")]
    submit = [str(BIN / "spark-submit"), "--master", MASTER, "--py-files", str(code), *confs]
    run(
        [*submit, str(REPO_ROOT / "jobs" / "score.py"), "--pipeline", "churn", "--date", DAY.isoformat()], env
    )

    apps = cluster_state()["completedapps"]
    assert len(apps) == 2 and all(a["cores"] >= 1 for a in apps), apps
    executor_dirs = [d for w in cluster.glob("worker-*") for d in w.glob("app-*/*") if d.is_dir()]
    assert executor_dirs, "executors ran on the workers"
    shipped = {p.name for d in executor_dirs for p in d.iterdir()}
    assert "batchscore.zip" in shipped, shipped
    assert any(n.startswith("churn_xgb-v1-") and n.endswith(".ubj") for n in shipped), "the model is shipped"

    settings = load_settings("churn", settings_env(home))
    lake_root = Path(settings.platform.lake_url)
    features = pq.read_table(lake_root / "features" / "churn" / f"dt={DAY}").to_pandas()
    scores = pq.read_table(lake_root / "scores" / "churn" / "model_version=1" / f"dt={DAY}").to_pandas()
    assert len(features) == len(scores) == ROWS
    assert scores["customer_id"].is_unique

    # The cluster's scores are the model's own predictions for those features.
    import xgboost as xgb

    from batchscore.models.registry import ModelRegistry
    from batchscore.storage.lake import Lake

    version = ModelRegistry(Lake(settings.platform.lake_url), "churn_xgb").get(1)
    booster = xgb.Booster(model_file=str(version.artifact("model.ubj")))
    names = list(version.metadata["feature_set"]["features"])
    expected = booster.predict(xgb.DMatrix(features[names].to_numpy(np.float32), feature_names=names))
    merged = features[["customer_id"]].assign(expected=expected).merge(scores, on="customer_id")
    assert len(merged) == ROWS
    np.testing.assert_allclose(merged["score"], merged["expected"], rtol=1e-5, atol=1e-6)


def run(command: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False, cwd=REPO_ROOT
    )
    assert result.returncode == 0, (
        f"{command[-5:]}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )
    return result.stdout
