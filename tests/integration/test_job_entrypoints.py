"""The stage modules run on their own: `python -m jobs.<stage>` and `spark-submit jobs/<stage>.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path

import pytest

from batchscore.examples.seed import SeedSpec, seed_lake
from batchscore.settings import REPO_ROOT
from batchscore.storage.lake import Lake
from tests.conftest import settings_env

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 21)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("jobs")
    seed_lake(Lake(str(home / "lake")), SeedSpec(rows=500), DAY, days=1)
    return home


def test_spark_submit_runs_a_job_module_with_shipped_code(home, tmp_path):
    bundle = tmp_path / "batchscore.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        for package in ("batchscore", "jobs", "features"):
            for path in (REPO_ROOT / package).rglob("*.py"):
                archive.write(path, path.relative_to(REPO_ROOT))
    venv_bin = Path(sys.executable).parent
    env = {
        **os.environ,
        **settings_env(home),
        "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}",
        "PYSPARK_PYTHON": sys.executable,
    }
    # churn has a quarantine: validate_raw's verdict comes first, as in the DAG
    gate = [sys.executable, "-m", "jobs.validate", "--pipeline", "churn", "--date", DAY.isoformat()]
    gated = subprocess.run(
        [*gate, "--stage", "raw"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert gated.returncode == 0 and last_json(gated.stdout)["quarantined_rows"] == 0, gated.stderr[-4000:]
    result = subprocess.run(
        [
            str(venv_bin / "spark-submit"),
            "--master",
            "local[1]",
            "--py-files",
            str(bundle),
            str(REPO_ROOT / "jobs" / "build_features.py"),
            "--pipeline",
            "churn",
            "--date",
            DAY.isoformat(),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out = last_json(result.stdout)
    assert out["rows"] == 500 and out["stage"] == "build_features"
    assert Lake.is_complete(home / "lake" / "features" / "churn" / f"dt={DAY}")


def test_python_m_job_reports_a_clear_error_for_a_missing_partition(home):
    env = {**os.environ, **settings_env(home)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.validate",
            "--pipeline",
            "churn",
            "--date",
            "2026-01-01",
            "--stage",
            "raw",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "PartitionError: partition" in result.stderr and "dt=2026-01-01 does not exist" in result.stderr
