"""The checks `batchscore run` and `backfill` make before Airflow: `--wait` on a lake in tmp_path."""

from __future__ import annotations

import argparse
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest

from batchscore.cli import main, preflight
from batchscore.cli.preflight import await_partitions, parse_duration
from batchscore.errors import BadInput
from batchscore.orchestration import airflow_run
from batchscore.storage.lake import Lake
from tests.conftest import settings_env

DAY = date(2026, 11, 20)


def land_later(lake: Lake, seconds: float) -> threading.Timer:
    def land() -> None:
        partition = lake.raw_partition("customers", DAY)
        partition.mkdir(parents=True)
        (partition / "_SUCCESS").touch()

    timer = threading.Timer(seconds, land)
    timer.start()
    return timer


def test_wait_returns_once_the_partition_lands_printing_progress(tmp_path: Path, capsys):
    lake = Lake(str(tmp_path))
    timer = land_later(lake, 0.5)
    await_partitions(lake, "customers", [DAY], timedelta(seconds=10), poll_s=0.05, progress_s=0.2)
    timer.join()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("waiting up to 10s for the raw partition of customers for 2026-11-20 (")
    assert str(lake.raw_partition("customers", DAY) / "_SUCCESS") in lines[0]
    assert any("still waiting for" in line and "so far, up to 10s" in line for line in lines[1:-1])
    assert lines[-1].startswith("landed after ")


def test_wait_gives_up_clearly_and_without_wait_refuses_at_once(tmp_path: Path):
    lake = Lake(str(tmp_path))
    with pytest.raises(BadInput, match="gave up after waiting 1s: the raw partition of customers"):
        await_partitions(lake, "customers", [DAY], timedelta(seconds=1), poll_s=0.05, progress_s=0.2)
    with pytest.raises(BadInput, match=r"has not landed: no .*dt=2026-11-20/_SUCCESS; nothing was run"):
        await_partitions(lake, "customers", [DAY], None)


class Started(Exception):
    """Raised by the stand-in for Airflow: the command got as far as running the DAG."""


def test_run_with_wait_runs_once_the_partition_lands(tmp_path: Path, monkeypatch, capsys):
    for key, value in settings_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(preflight, "POLL_S", 0.05)

    def run_pipeline(settings, run_date, **_):
        assert lake.landed(lake.raw_partition("customers", run_date))
        raise Started(run_date)

    monkeypatch.setattr(airflow_run, "run_pipeline", run_pipeline)
    lake = Lake(str(tmp_path / "lake"))
    timer = land_later(lake, 0.3)
    with pytest.raises(Started):
        main(["run", "--pipeline", "churn", "--date", DAY.isoformat(), "--wait", "30s"])
    timer.join()
    out = capsys.readouterr().out
    assert "waiting up to 30s for the raw partition of customers" in out and "landed after" in out


@pytest.mark.parametrize(("text", "seconds"), [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("45s", 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "1h 30m", "-2h"])
def test_bad_durations(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)
