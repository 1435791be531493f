"""The pinned model crosses tasks as XCom: the same keys as before, validated when read back."""

from __future__ import annotations

import pytest

from batchscore.models.pinned import BadStageResult, PinnedModel

XCOM = {  # resolve_model's XCom as the Airflow UI and `batchscore run` have always shown it
    "stage": "resolve_model",
    "model_name": "churn_xgb",
    "model_version": 2,
    "feature_set_hash": "h" * 64,
    "source": "alias:champion@2026-10-05",
    "challenger_version": None,
}


def test_the_xcom_keeps_its_keys_and_reads_back_the_same():
    pinned = PinnedModel.from_xcom(XCOM)
    assert (pinned.model_version, pinned.challenger_version, pinned.source) == (2, None, XCOM["source"])
    assert pinned.to_xcom() == XCOM
    assert PinnedModel.from_xcom({**XCOM, "challenger_version": 3}).challenger_version == 3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "expected a mapping"),
        ({**XCOM, "model_version": "2"}, "'model_version' must be a int, found str"),
        ({**XCOM, "model_version": True}, "'model_version' must be a int"),
        ({k: v for k, v in XCOM.items() if k != "source"}, "'source' must be a str, found nothing"),
        ({**XCOM, "challenger_version": 1.5}, "'challenger_version' must be a int"),
    ],
)
def test_a_malformed_xcom_fails_naming_the_field(value, message):
    with pytest.raises(BadStageResult, match=message):
        PinnedModel.from_xcom(value)
