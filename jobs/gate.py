"""Decide on a run's drift evidence: record the decision and alert when the gate fires.

The decision is stored once per (pipeline, day, model version) in `model_events`. When
more than `drift.max_drifted_share` of the features drift, the gate records
`retrain_recommended` and alerts; retraining itself is the retrain DAG's job.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from batchscore.alerts import send_alert
from batchscore.settings import Settings
from batchscore.warehouse import open_warehouse

PASS = "pass"
RETRAIN = "retrain_recommended"


def decide(drift: dict[str, Any], max_drifted_share: float) -> str:
    """Pure: the gate's decision for one run's drift summary."""
    return RETRAIN if drift["drifted_share"] > max_drifted_share else PASS


def run(
    settings: Settings, run_date: date, model_version: int, run_id: str, drift: dict[str, Any]
) -> dict[str, Any]:
    pipeline = settings.pipeline
    decision = decide(drift, pipeline.drift.max_drifted_share)
    evidence = {
        "drifted_share": drift["drifted_share"],
        "max_drifted_share": pipeline.drift.max_drifted_share,
        "drifted_features": drift["drifted_features"],
        "prediction_psi": drift.get("prediction_psi"),
        "report": drift.get("report"),
    }
    open_warehouse(settings.platform.warehouse_url).record_event(
        pipeline.name, run_date, pipeline.model.name, model_version, "drift_gate", decision, evidence, run_id
    )
    alerted = False
    if decision != PASS:
        send_alert(
            settings.platform.alert_webhook,
            f"batchscore {pipeline.name} {run_date.isoformat()}: drift above threshold, retraining recommended",
            evidence,
        )
        alerted = True
    return {"stage": "gate", "decision": decision, "alerted": alerted, **evidence}
