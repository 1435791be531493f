"""The drift gate: its decision, what it records, and running it from recorded metrics."""

from dataclasses import replace
from datetime import date

import pytest

from batchscore.errors import BadStageResult
from batchscore.quality.drift_evidence import DriftEvidence, DriftReport
from batchscore.settings import DriftSettings
from batchscore.storage.warehouse import open_warehouse
from jobs import gate

DAY = date(2026, 11, 21)
GATE_XCOM = {  # the drift gate's XCom as the Airflow UI and the retrain DAG's conf have always had it
    "stage": "gate",
    "decision": gate.RETRAIN,
    "alerted": True,
    "trigger_retrain": True,
    "run_date": DAY.isoformat(),
    "model_version": 1,
    "run_id": "run-1",
    "reasons": ["26% of features drifted (limit 25%)"],
    "drifted_share": 0.26,
    "max_drifted_share": 0.25,
    "drifted_features": ["f1"],
    "prediction_method": "psi",
    "prediction_statistic": 0.4,
    "prediction_drifted": True,
    "segments": {},
    "report": None,
}


def test_decision_fires_only_above_the_allowed_share():
    limits = DriftSettings(max_drifted_share=0.25)
    assert gate.reasons_to_retrain(DriftEvidence(0.25), limits) == []
    assert gate.reasons_to_retrain(DriftEvidence(0.26), limits) == ["26% of features drifted (limit 25%)"]


def test_prediction_drift_and_one_drifting_segment_each_fire_the_gate():
    limits = DriftSettings(max_drifted_share=0.25)
    calm = DriftEvidence(drifted_share=0.1, prediction_drifted=False)
    assert gate.reasons_to_retrain(calm, limits) == []
    assert gate.reasons_to_retrain(replace(calm, prediction_drifted=True), limits) == [
        "the score's distribution drifted"
    ]
    assert (
        gate.reasons_to_retrain(replace(calm, prediction_drifted=True), DriftSettings(prediction_gates=False))
        == []
    )
    one_segment = replace(
        calm, segments={"contract_monthly=1": {"drifted_share": 0.5, "prediction_drifted": False}}
    )
    assert gate.reasons_to_retrain(one_segment, limits) == [
        "segment contract_monthly=1: 50% of features drifted"
    ]


def test_gate_records_decision_from_recorded_metrics_and_alerts(churn_settings, caplog):
    warehouse = open_warehouse(churn_settings.platform.warehouse_url)
    metrics = [
        {
            "feature": f"f{i}",
            "method": "psi",
            "statistic": 0.5 if i < 3 else 0.01,
            "threshold": 0.2,
            "drifted": i < 3,
        }
        for i in range(10)
    ] + [{"feature": "score", "method": "psi", "statistic": 0.4, "threshold": 0.2, "drifted": True}]
    segment = [{**m, "segment": "contract_monthly=1", "drifted": m["feature"] == "f5"} for m in metrics]
    warehouse.replace_drift_metrics("churn", DAY, 1, metrics + segment)

    drift = gate.recorded_drift(churn_settings, DAY, 1)
    assert drift.to_xcom() == {
        "drifted_share": 0.3,
        "drifted_features": ["f0", "f1", "f2"],
        "prediction_method": "psi",
        "prediction_statistic": 0.4,
        "prediction_drifted": True,
        "segments": {
            "contract_monthly=1": {
                "drifted_share": 0.1,
                "drifted_features": ["f5"],
                "prediction_drifted": False,
            }
        },
        "report": None,
    }
    result = gate.run(churn_settings, DAY, 1, "run-1", drift)

    assert result.decision == gate.RETRAIN and result.alerted
    assert "ALERT batchscore churn 2026-11-21: drift above threshold" in caplog.text
    events = warehouse.query("SELECT event, decision, run_id FROM model_events")
    assert events == [("drift_gate", "retrain_recommended", "run-1")]


def test_gate_without_metrics_says_what_to_run(churn_settings):
    with pytest.raises(LookupError, match=r"run jobs\.drift first"):
        gate.recorded_drift(churn_settings, DAY, 1)


def test_retraining_is_triggered_by_drift_or_by_realized_performance():
    from batchscore.orchestration.nightly_tasks import retrain_needed

    fired, passed = GATE_XCOM, {**GATE_XCOM, "decision": gate.PASS, "trigger_retrain": False}
    assert retrain_needed("churn", fired, {"trigger_retrain": False})
    assert retrain_needed("churn", passed, {"trigger_retrain": True})
    assert not retrain_needed("churn", passed, {"trigger_retrain": False})
    assert not retrain_needed("churn", passed, None)


def test_the_gate_xcom_keeps_its_keys_and_reads_back_the_same():
    decided = gate.GateDecision.from_xcom(GATE_XCOM)
    assert (decided.decision, decided.trigger_retrain, decided.model_version) == (gate.RETRAIN, True, 1)
    assert decided.evidence["reasons"] == GATE_XCOM["reasons"]
    assert decided.to_xcom() == GATE_XCOM


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "expected a mapping"),
        ({**GATE_XCOM, "trigger_retrain": "yes"}, "'trigger_retrain' must be a bool, found str"),
        ({**GATE_XCOM, "model_version": True}, "'model_version' must be a int"),
        ({k: v for k, v in GATE_XCOM.items() if k != "decision"}, "'decision' must be a str, found nothing"),
    ],
)
def test_a_malformed_gate_xcom_fails_naming_the_field(value, message):
    with pytest.raises(BadStageResult, match=message):
        gate.GateDecision.from_xcom(value)


DRIFT_XCOM = {  # the drift stage's XCom, which the drift gate reads its evidence from
    "stage": "drift",
    "rows": 2_000,
    "drifted_share": 0.3,
    "drifted_features": ["f0", "f1", "f2"],
    "prediction_method": "psi",
    "prediction_statistic": 0.4,
    "prediction_drifted": True,
    "segments": {"contract_monthly=1": {"rows": 500, "drifted_share": 0.1, "drifted_features": ["f5"]}},
    "report": "/lake/reports/drift/churn/2026-11-21/drift.html",
    "report_json": "/lake/reports/drift/churn/2026-11-21/drift.json",
    "report_sample": {"reference_rows": 1_000, "current_rows": 1_000, "note": "sampled"},
    "attribution_shifted": [],
    "drift_seconds": 0.5,
    "report_seconds": 1.25,
    "seconds": 2.0,
}


def test_the_drift_xcom_keeps_its_keys_and_the_gate_reads_its_evidence():
    report = DriftReport.from_xcom(DRIFT_XCOM)
    assert report.to_xcom() == DRIFT_XCOM
    assert report.evidence == DriftEvidence.from_xcom(DRIFT_XCOM)
    assert (report.evidence.drifted_features, report.evidence.prediction_drifted) == (
        ("f0", "f1", "f2"),
        True,
    )
    assert DriftEvidence.from_xcom({**DRIFT_XCOM, "prediction_method": None, "report": None}).report is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "expected a mapping, found list"),
        ({**DRIFT_XCOM, "drifted_share": "0.3"}, "'drifted_share' must be a int or float, found str"),
        ({**DRIFT_XCOM, "drifted_features": ["f0", 1]}, "'drifted_features' must list feature names"),
        ({**DRIFT_XCOM, "prediction_drifted": None}, "'prediction_drifted' must be a bool, found nothing"),
        ({**DRIFT_XCOM, "segments": {"s": {"rows": 5}}}, "segment s: field 'drifted_share'"),
        ({**DRIFT_XCOM, "rows": 2_000.0}, "'rows' must be a int, found float"),
    ],
)
def test_a_malformed_drift_xcom_fails_naming_the_field(value, message):
    with pytest.raises(BadStageResult, match=message):
        DriftReport.from_xcom(value)
