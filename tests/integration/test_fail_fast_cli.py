"""`batchscore run` and `backfill` refuse, before Airflow starts, a day whose raw partition has
not landed and a day after today: the real command, on an empty lake, within seconds."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from batchscore.settings import load_settings
from tests.conftest import settings_env
from tests.integration.batchscore_cli import cli

pytestmark = pytest.mark.integration


def test_a_day_that_has_not_landed_fails_within_seconds_naming_what_is_missing(tmp_path: Path):
    started = time.monotonic()
    result = cli(tmp_path, "run", "--pipeline", "churn", "--date", "2026-11-20")
    assert time.monotonic() - started < 10
    assert result.returncode == 2 and not result.stdout
    marker = tmp_path / "lake" / "raw" / "customers" / "dt=2026-11-20" / "_SUCCESS"
    assert result.stderr.count("\n") == 1
    assert "the raw partition of customers for 2026-11-20 has not landed" in result.stderr
    assert str(marker) in result.stderr and "--wait" in result.stderr
    assert not (tmp_path / "airflow").exists(), "Airflow was started"

    waited = cli(tmp_path, "backfill", "--pipeline", "churn", "--start", "2026-11-20", "--end", "2026-11-21")
    assert waited.returncode == 2 and "2 of 2 days have no complete raw/customers partition" in waited.stderr


def test_a_day_after_today_is_refused_unless_allowed(tmp_path: Path):
    zone = load_settings("churn", settings_env(tmp_path)).pipeline.schedule.timezone
    tomorrow = datetime.now(ZoneInfo(zone)).date() + timedelta(days=1)
    result = cli(tmp_path, "run", "--pipeline", "churn", "--date", tomorrow.isoformat())
    assert result.returncode == 2
    assert f"{tomorrow} is after today" in result.stderr and "--allow-future" in result.stderr
    allowed = cli(tmp_path, "run", "--pipeline", "churn", "--date", tomorrow.isoformat(), "--allow-future")
    assert allowed.returncode == 2 and "has not landed" in allowed.stderr  # past the date check
    ranged = cli(
        tmp_path,
        "backfill",
        "--pipeline",
        "churn",
        "--start",
        str(date(2026, 11, 20)),
        "--end",
        str(tomorrow),
    )
    assert ranged.returncode == 2 and f"{tomorrow} is after today" in ranged.stderr
