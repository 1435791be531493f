"""Decide on a run's drift evidence: record the decision and alert when the gate fires.

The decision is stored once per (pipeline, day, model version) in `model_events`. The gate
recommends retraining when more than `drift.max_drifted_share` of the features drift on the
whole partition or within any segment, or (with `drift.prediction_gates`) when the score
itself drifts. Retraining is the retrain DAG's job: the nightly DAG triggers it with this
evidence as its conf.

    python -m jobs.gate --pipeline churn --date 2026-11-21 --model-version 1 --run-id manual-1
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from batchscore.models.metadata import typed_field
from batchscore.models.pinned import BadStageResult
from batchscore.models.scoring import SCORE_COLUMN
from batchscore.quality.drift import ALL_ROWS
from batchscore.quality.drift_evidence import DriftEvidence
from batchscore.settings import DriftSettings, Settings, load_settings
from batchscore.storage.warehouse import open_warehouse
from batchscore.telemetry.alerts import send_alert

PASS = "pass"
RETRAIN = "retrain_recommended"


@dataclass(frozen=True)
class GateDecision:
    """The drift gate's decision on a run (pass or retrain recommended, alerted or not, whether
    it triggers the retrain DAG) and the evidence it decided on, as recorded in `model_events`."""

    decision: str
    alerted: bool
    trigger_retrain: bool
    run_date: str
    model_version: int
    run_id: str
    evidence: Mapping[str, Any]
    """Reasons, drifted shares and features, the score's drift, segments, the report's path."""

    def to_xcom(self) -> dict[str, Any]:
        """The task's XCom (the keys it has always had); the retrain DAG gets it as its evidence."""
        return {
            "stage": "gate",
            "decision": self.decision,
            "alerted": self.alerted,
            "trigger_retrain": self.trigger_retrain,
            "run_date": self.run_date,
            "model_version": self.model_version,
            "run_id": self.run_id,
            **self.evidence,
        }

    @classmethod
    def from_xcom(cls, value: Any) -> GateDecision:
        """Read back the drift gate's XCom, checking the decision's fields."""
        where = "drift_gate's result"
        if not isinstance(value, Mapping):
            raise BadStageResult(f"{where}: expected a mapping, found {type(value).__name__}")
        decided = ("stage", "decision", "alerted", "trigger_retrain", "run_date", "model_version", "run_id")
        return cls(
            decision=typed_field(value, "decision", str, where, BadStageResult),
            alerted=typed_field(value, "alerted", bool, where, BadStageResult),
            trigger_retrain=typed_field(value, "trigger_retrain", bool, where, BadStageResult),
            run_date=typed_field(value, "run_date", str, where, BadStageResult),
            model_version=typed_field(value, "model_version", int, where, BadStageResult),
            run_id=typed_field(value, "run_id", str, where, BadStageResult),
            evidence={k: v for k, v in value.items() if k not in decided},
        )


def reasons_to_retrain(drift: DriftEvidence, settings: DriftSettings) -> list[str]:
    """Pure: why the drift evidence calls for retraining (empty when it does not)."""
    limit = settings.max_drifted_share
    reasons = []
    if drift.drifted_share > limit:
        reasons.append(f"{drift.drifted_share:.0%} of features drifted (limit {limit:.0%})")
    if settings.prediction_gates and drift.prediction_drifted:
        reasons.append("the score's distribution drifted")
    for name, seg in sorted(drift.segments.items()):
        if seg["drifted_share"] > limit:
            reasons.append(f"segment {name}: {seg['drifted_share']:.0%} of features drifted")
        if settings.prediction_gates and seg.get("prediction_drifted"):
            reasons.append(f"segment {name}: the score's distribution drifted")
    return reasons


def run(
    settings: Settings, run_date: date, model_version: int, run_id: str, drift: DriftEvidence
) -> GateDecision:
    """Decide on `drift`, record the decision in `model_events` and alert when the gate fires."""
    pipeline = settings.pipeline
    reasons = reasons_to_retrain(drift, pipeline.drift)
    decision = RETRAIN if reasons else PASS
    evidence = {
        "reasons": reasons,
        "drifted_share": drift.drifted_share,
        "max_drifted_share": pipeline.drift.max_drifted_share,
        "drifted_features": list(drift.drifted_features),
        "prediction_method": drift.prediction_method,
        "prediction_statistic": drift.prediction_statistic,
        "prediction_drifted": drift.prediction_drifted,
        "segments": dict(drift.segments),
        "report": drift.report,
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
    trigger = decision == RETRAIN and pipeline.drift.trigger_retrain
    return GateDecision(
        decision=decision,
        alerted=alerted,
        trigger_retrain=trigger,
        run_date=run_date.isoformat(),
        model_version=model_version,
        run_id=run_id,
        evidence=evidence,
    )


def recorded_drift(settings: Settings, run_date: date, model_version: int) -> DriftEvidence:
    """The drift summary of a run, rebuilt from `drift_metrics` (for running the gate on its own)."""
    rows = open_warehouse(settings.platform.warehouse_url).query(
        "SELECT segment, feature, method, statistic, drifted FROM drift_metrics "
        "WHERE pipeline = ? AND run_date = ? AND model_version = ? AND method <> 'attribution' "
        "ORDER BY segment, feature",
        [settings.pipeline.name, run_date, model_version],
    )
    by_segment: dict[str, list[tuple[str, str, float, bool]]] = {}
    for segment, feature, method, statistic, drifted in rows:
        by_segment.setdefault(segment, []).append((feature, method, statistic, bool(drifted)))
    if not by_segment.get(ALL_ROWS):
        raise LookupError(
            f"no drift metrics for {settings.pipeline.name} {run_date} v{model_version}; run jobs.drift first"
        )

    def summary(metrics: list[tuple[str, str, float, bool]]) -> dict[str, Any]:
        features = [(name, drifted) for name, _, _, drifted in metrics if name != SCORE_COLUMN]
        score = next((m for m in metrics if m[0] == SCORE_COLUMN), None)
        return {
            "drifted_share": sum(d for _, d in features) / len(features) if features else 0.0,
            "drifted_features": sorted(name for name, d in features if d),
            "prediction_method": score[1] if score else None,
            "prediction_statistic": score[2] if score else None,
            "prediction_drifted": bool(score and score[3]),
        }

    whole = summary(by_segment.pop(ALL_ROWS))
    whole["segments"] = {
        name: {
            k: v
            for k, v in summary(metrics).items()
            if k not in ("prediction_method", "prediction_statistic")
        }
        for name, metrics in by_segment.items()
    }
    return DriftEvidence.from_xcom(whole, "the recorded drift metrics")


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument("--model-version", type=int, required=True)
    parser.add_argument("--run-id", required=True)
    args = parser.parse_args(argv)
    settings = load_settings(args.pipeline)
    drift = recorded_drift(settings, args.date, args.model_version)
    print_result(run(settings, args.date, args.model_version, args.run_id, drift).to_xcom())


if __name__ == "__main__":
    main(sys.argv[1:])
