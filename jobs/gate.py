"""Decide on a run's drift evidence: record the decision and alert when the gate fires.

The decision is stored once per (pipeline, day, model version) in `model_events`. When
more than `drift.max_drifted_share` of the features drift, the gate records
`retrain_recommended` and alerts; retraining itself is the retrain DAG's job.

    python -m jobs.gate --pipeline churn --date 2026-11-21 --model-version 1 --run-id manual-1
"""

from __future__ import annotations

import sys
from datetime import date
from typing import Any

from batchscore.alerts import send_alert
from batchscore.scoring import SCORE_COLUMN
from batchscore.settings import Settings, load_settings
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


def recorded_drift(settings: Settings, run_date: date, model_version: int) -> dict[str, Any]:
    """The drift summary of a run, rebuilt from `drift_metrics` (for running the gate on its own)."""
    rows = open_warehouse(settings.platform.warehouse_url).query(
        "SELECT feature, statistic, drifted FROM drift_metrics WHERE pipeline = ? AND run_date = ? AND model_version = ?",
        [settings.pipeline.name, run_date, model_version],
    )
    features = [(name, drifted) for name, _, drifted in rows if name != SCORE_COLUMN]
    if not features:
        raise LookupError(
            f"no drift metrics for {settings.pipeline.name} {run_date} v{model_version}; run jobs.drift first"
        )
    return {
        "drifted_share": sum(d for _, d in features) / len(features),
        "drifted_features": sorted(name for name, d in features if d),
        "prediction_psi": next((stat for name, stat, _ in rows if name == SCORE_COLUMN), None),
    }


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument("--model-version", type=int, required=True)
    parser.add_argument("--run-id", required=True)
    args = parser.parse_args(argv)
    settings = load_settings(args.pipeline)
    drift = recorded_drift(settings, args.date, args.model_version)
    print_result(run(settings, args.date, args.model_version, args.run_id, drift))


if __name__ == "__main__":
    main(sys.argv[1:])
