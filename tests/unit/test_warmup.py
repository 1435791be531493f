"""The Spark warm-up: on the run's session, in the background, never in the way of a run."""

from __future__ import annotations

import logging
import threading

import pytest

from batchscore.compute.spark import get_spark
from batchscore.orchestration import warmup
from batchscore.settings import load_platform
from tests.conftest import settings_env


@pytest.fixture(autouse=True)
def fresh_warmup(monkeypatch):
    monkeypatch.setattr(warmup, "_started", None)


def test_the_warm_up_works_on_the_session_the_stages_get(spark, tmp_path):
    platform = load_platform({**settings_env(tmp_path), "BATCHSCORE_SPARK_MASTER": "local[2]"})
    (tmp_path / "var").mkdir()
    thread = warmup.start(platform)
    assert thread is not None and warmup.start(platform) is thread, "once per process"
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert get_spark(platform) is spark, "the stages get the session the warm-up used"
    assert list((tmp_path / "var").iterdir()) == [], "its scratch files are gone"


def test_a_session_asked_for_from_two_threads_is_one_session(spark, tmp_path):
    platform = load_platform({**settings_env(tmp_path), "BATCHSCORE_SPARK_MASTER": "local[2]"})
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(get_spark(platform))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(got) == 2 and all(session._jsc.sc() == spark._jsc.sc() for session in got)


def test_a_failed_warm_up_only_logs(spark, tmp_path, caplog):
    platform = load_platform({**settings_env(tmp_path / "missing"), "BATCHSCORE_SPARK_MASTER": "local[2]"})
    with caplog.at_level(logging.WARNING, logger=warmup.__name__):
        warmup.warm(platform)  # its scratch folder's parent does not exist
    assert "Spark warm-up failed (the stages will start Spark themselves)" in caplog.text


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"BATCHSCORE_SPARK_MASTER": "spark://cluster:7077"}, "cluster"),
        ({"BATCHSCORE_SPARK_WARMUP": "0"}, "switched off"),
    ],
)
def test_no_warm_up_on_a_cluster_or_when_switched_off(tmp_path, extra, why):
    platform = load_platform({**settings_env(tmp_path), **extra})
    assert platform.spark_warmup is (why == "cluster")
    assert warmup.start(platform) is None


def test_preloading_imports_the_modules_and_a_missing_one_only_logs(caplog):
    import sys

    warmup.preload(("json", "evidently.presets"))
    assert "evidently.presets" in sys.modules
    with caplog.at_level(logging.WARNING, logger=warmup.__name__):
        warmup.preload(("batchscore_no_such_module",))
    assert "warm-up could not import batchscore_no_such_module (drift_report will)" in caplog.text


def test_every_preloaded_module_is_one_drift_report_imports():
    from pathlib import Path

    source = Path(warmup.__file__).parents[1].joinpath("quality", "drift_report.py").read_text()
    for name in warmup.PRELOADED:
        assert f"from {name} import" in source, name
