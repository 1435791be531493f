"""End to end on an S3 lake (moto's server on loopback): seed -> train -> a full nightly DagRun,
with a fresh working copy for the run and credentials from an Airflow connection only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from tests.conftest import settings_env
from tests.s3_server import CREDENTIALS, create_bucket, moto_server, s3_client

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

PORT = 18081
BUCKET = "batchscore-lake"
DAY = date(2026, 11, 21)
ROWS = 2000


def run_cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("batchscore")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"{args}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def objects(endpoint: str, prefix: str) -> dict[str, int]:
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"].removeprefix(prefix): o["Size"] for page in pages for o in page.get("Contents", [])}


def test_a_nightly_run_reads_and_writes_the_s3_lake(tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BATCHSCORE_", "AIRFLOW"))}
    with moto_server(PORT, tmp_path / "moto") as endpoint:
        create_bucket(endpoint, BUCKET)
        lake_env = {
            **settings_env(tmp_path),
            "BATCHSCORE_LAKE_URL": f"s3://{BUCKET}/nightly",
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
        }
        # Seeding and training: credentials and endpoint from the environment.
        with_env_credentials = {
            **base,
            **lake_env,
            **CREDENTIALS,
            "BATCHSCORE_S3_ENDPOINT_URL": endpoint,
            "BATCHSCORE_LAKE_CACHE_DIR": str(tmp_path / "copy-seed"),
        }
        run_cli(
            with_env_credentials,
            "lake",
            "seed",
            "--days",
            "12",
            "--rows",
            str(ROWS),
            "--end-date",
            DAY.isoformat(),
        )
        out = run_cli(with_env_credentials, "train", "--pipeline", "churn", "--date", "2026-11-17")
        assert "Registered churn_xgb v1 as champion" in out

        # The run: an empty working copy, no AWS_* variables; an Airflow connection holds it all.
        connection = {
            "conn_type": "aws",
            "login": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "password": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
        run_copy = tmp_path / "copy-run"
        with_connection = {
            **base,
            **lake_env,
            "BATCHSCORE_S3_CONN_ID": "batchscore_lake",
            "AIRFLOW_CONN_BATCHSCORE_LAKE": json.dumps(connection),
            "BATCHSCORE_LAKE_CACHE_DIR": str(run_copy),
        }
        out = run_cli(with_connection, "run", "--pipeline", "churn", "--date", DAY.isoformat())
        assert "SUCCESS" in out and f"published {ROWS:,}" in out

        day = f"dt={DAY.isoformat()}"
        features = objects(endpoint, f"nightly/features/churn/{day}/")
        scores = objects(endpoint, f"nightly/scores/churn/model_version=1/{day}/")
        for partition, listing in (("features", features), ("scores", scores)):
            assert "_SUCCESS" in listing and any(k.endswith(".parquet") for k in listing), partition
            assert not any(k.endswith(".crc") for k in listing), partition
            prefix = (
                f"nightly/features/churn/{day}/"
                if partition == "features"
                else f"nightly/scores/churn/model_version=1/{day}/"
            )
            body = s3_client(endpoint).get_object(Bucket=BUCKET, Key=prefix + "_SUCCESS")["Body"].read()
            manifest = json.loads(body)["files"]
            assert {k: v["bytes"] for k, v in manifest.items()} == {
                k: v for k, v in listing.items() if k != "_SUCCESS"
            }, f"{partition}: the marker's manifest names exactly the uploaded files"
        assert "_batchscore.json" in features
        models = objects(endpoint, "nightly/models/churn_xgb/")
        assert {"aliases.json", "versions/1/metadata.json", "versions/1/model.ubj"} <= set(models)
        reports = objects(endpoint, "nightly/reports/")
        assert f"drift/churn/{day}/drift.html" in reports
        assert f"validation/churn/{day}/raw/report.html" in reports
        assert f"health/churn/{day}/health.html" in reports

        # The run staged only the day it scores.
        staged = sorted(p.name for p in (run_copy / BUCKET / "nightly" / "raw" / "customers").iterdir())
        assert staged == [day]

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT count(*), count(DISTINCT customer_id), min(run_date), max(model_version) FROM scores_churn"
        ).fetchone()
        runs = con.execute("SELECT run_date, status, rows_in, rows_out FROM scoring_runs").fetchall()
    assert rows == (ROWS, ROWS, DAY, 1)
    assert runs == [(DAY, "published", ROWS, ROWS)]
