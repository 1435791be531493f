"""Stage results cross tasks as XCom: every stage's timing fields (read by the publish task) and
the score stage's result (read by `publish_shadow`) keep their keys and are validated when read back."""

from __future__ import annotations

import pytest

from batchscore.models.pinned import BadStageResult
from batchscore.models.scored import ScoreResult, ShadowScores
from batchscore.orchestration.run_metrics import StageTiming

SCORED = {"stage": "score", "rows": 2_000, "seconds": 4.25, "cpu_seconds": 3.5, "reused": False}


def test_a_stage_timing_reads_back_what_the_stage_took():
    timing = StageTiming.from_xcom(SCORED)
    assert timing == StageTiming("score", seconds=4.25, cpu_seconds=3.5)
    assert timing.elapsed == 4.25
    reused = StageTiming.from_xcom({**SCORED, "reused": True, "reuse_seconds": 0.2, "cpu_seconds": None})
    assert (reused.elapsed, reused.cpu_seconds) == (0.2, None)
    assert StageTiming.from_xcom({"stage": "validate_raw", "seconds": 1}).elapsed == 1.0
    assert StageTiming.from_xcom({"stage": "publish_shadow", "skipped": "no challenger"}).elapsed is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "expected a mapping"),
        ({"seconds": 1.0}, "'stage' must be a str, found nothing"),
        ({**SCORED, "seconds": "4.25"}, "score's result: field 'seconds' must be a number, found str"),
        ({**SCORED, "cpu_seconds": True}, "'cpu_seconds' must be a number, found bool"),
        ({**SCORED, "reused": True}, "'reuse_seconds' must be a number, found nothing"),
    ],
)
def test_a_malformed_stage_timing_fails_naming_the_field(value, message):
    with pytest.raises(BadStageResult, match=message):
        StageTiming.from_xcom(value)


SCORE_XCOM = {  # the score stage's XCom as the Airflow UI and `batchscore run` have always shown it
    "stage": "score",
    "rows": 2_000,
    "rows_in": 2_000,
    "path": "/lake/scores/churn/v1/dt=2026-11-21",
    "model_version": 1,
    "backend": "xgboost",
    "device": "cpu",
    "tasks": 4,
    "threads_per_task": 1,
    "worker_model_loads": {"101": 1},
    "seconds": 4.25,
    "rows_per_s": 470.6,
    "challenger": {"model_version": 2, "rows": 2_000, "path": "/lake/scores/churn/v2/dt=2026-11-21"},
    "fingerprint": "f" * 64,
    "reused": False,
}


def test_the_score_xcom_keeps_its_keys_and_reads_back_the_same():
    scored = ScoreResult.from_xcom(SCORE_XCOM)
    assert scored.challenger == ShadowScores(2, 2_000, SCORE_XCOM["challenger"]["path"])
    assert (scored.rows, scored.reused, scored.details["device"]) == (2_000, False, "cpu")
    assert scored.to_xcom() == SCORE_XCOM
    assert ScoreResult.from_xcom({**SCORE_XCOM, "challenger": None}).challenger is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "expected a mapping"),
        ({**SCORE_XCOM, "rows": "2000"}, "score's result: field 'rows' must be a int, found str"),
        ({k: v for k, v in SCORE_XCOM.items() if k != "reused"}, "'reused' must be a bool, found nothing"),
        ({**SCORE_XCOM, "challenger": {"model_version": 2, "rows": 5}}, "its challenger: field 'path'"),
        ({**SCORE_XCOM, "challenger": [2]}, "its challenger: expected a mapping, found list"),
    ],
)
def test_a_malformed_score_xcom_fails_naming_the_field(value, message):
    with pytest.raises(BadStageResult, match=message):
        ScoreResult.from_xcom(value)
