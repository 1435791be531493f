"""Shared fixtures: one Spark session for the whole test run, and isolated lakes/warehouses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batchscore.settings import REPO_ROOT, Settings, load_settings


def settings_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Environment for a fully isolated batchscore home under `tmp`."""
    return {
        "BATCHSCORE_HOME": str(tmp),
        "BATCHSCORE_LAKE_URL": str(tmp / "lake"),
        "BATCHSCORE_WAREHOUSE_URL": f"duckdb://{tmp / 'warehouse.duckdb'}",
        "BATCHSCORE_PIPELINES_DIR": str(REPO_ROOT / "pipelines"),
        **extra,
    }


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """The one SparkSession of the test run (local mode, 2 cores)."""
    from batchscore.compute.spark import get_spark
    from batchscore.settings import load_platform

    session = get_spark(load_platform({"BATCHSCORE_SPARK_MASTER": "local[2]"}), app_name="batchscore-tests")
    yield session
    session.stop()


@pytest.fixture
def churn_settings(tmp_path: Path) -> Settings:
    return load_settings("churn", settings_env(tmp_path))
