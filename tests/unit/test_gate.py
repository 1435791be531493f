"""The drift gate: its decision, what it records, and running it from recorded metrics."""

from datetime import date

import pytest

from batchscore.warehouse import open_warehouse
from jobs import gate

DAY = date(2026, 11, 21)


def test_decision_fires_only_above_the_allowed_share():
    assert gate.decide({"drifted_share": 0.25}, 0.25) == gate.PASS
    assert gate.decide({"drifted_share": 0.26}, 0.25) == gate.RETRAIN


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
    warehouse.replace_drift_metrics("churn", DAY, 1, metrics)

    drift = gate.recorded_drift(churn_settings, DAY, 1)
    assert drift == {"drifted_share": 0.3, "drifted_features": ["f0", "f1", "f2"], "prediction_psi": 0.4}
    result = gate.run(churn_settings, DAY, 1, "run-1", drift)

    assert result["decision"] == gate.RETRAIN and result["alerted"]
    assert "ALERT batchscore churn 2026-11-21: drift above threshold" in caplog.text
    events = warehouse.query("SELECT event, decision, run_id FROM model_events")
    assert events == [("drift_gate", "retrain_recommended", "run-1")]


def test_gate_without_metrics_says_what_to_run(churn_settings):
    with pytest.raises(LookupError, match=r"run jobs\.drift first"):
        gate.recorded_drift(churn_settings, DAY, 1)
