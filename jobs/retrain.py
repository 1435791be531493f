"""Retrain a challenger, evaluate it against the champion, and apply the promotion gate.

Stages (the retrain DAG runs them as tasks; each also runs on its own):

1. `train_challenger`: the training set from the same feature code plus the labels landed by
   the run's cut-off date, point in time (features of each label's own day), from the drift
   date on when the drift gate triggered the run; trains XGBoost, registers the version
   (with its model card) and points the `challenger` alias at it. The holdout rows are
   kept under `reports/retrain/<pipeline>/dt=<date>/holdout.parquet`.
2. `evaluate`: champion and challenger score the same holdout: AUC, log loss, calibration
   error, overall and per segment; plus the labelled shadow scores of the challenger when
   the `shadow_<scores table>` warehouse table exists; scoring throughput and artifact size.
3. `promotion_gate`: promote only when the challenger beats the champion by
   `promotion.min_auc_gain` without a worse log loss, no segment's AUC drops by more than
   `promotion.segment_auc_tolerance`, the data gates passed, and throughput and artifact size
   are within budget. The decision and its evidence go to `model_events`; the champion
   alias moves only when `promotion.auto` is true, otherwise the challenger awaits
   `batchscore models promote`.

    python -m jobs.retrain --pipeline churn --date 2026-11-21 [--drift-from 2026-11-14]
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from batchscore.model_metrics import classification_metrics
from batchscore.models.promotion import PROMOTE, REJECT, promotion_decision
from batchscore.models.registry import AliasConflict, ModelRegistry, ModelVersion
from batchscore.models.training import (
    TrainingError,
    build_training_set,
    segment_metrics,
    train_and_register,
)
from batchscore.settings import Settings, load_settings
from batchscore.storage.lake import Lake, write_bytes_atomic
from batchscore.storage.warehouse import open_warehouse
from batchscore.telemetry.alerts import send_alert
from features import load_feature_set

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_CHALLENGER_ALIAS = "challenger"
MIN_HOLDOUT_ROWS = 200
THROUGHPUT_ROWS = 200_000


def cutoff_date(run_date: date, drift_from: date | None, settings: Settings) -> date:
    """Labels landed by this day are used: the run's date, or, for a drift-triggered run, the
    drift day plus `training.retrain_after_days` (enough post-drift labels to learn from)."""
    if drift_from is None:
        return run_date
    return max(run_date, drift_from + timedelta(days=settings.pipeline.training.retrain_after_days))


def retrain_dir(settings: Settings, run_date: date) -> Path:
    return Lake(settings.platform.lake_url).reports_dir("retrain", settings.pipeline.name, run_date)


def data_checks(frame: pd.DataFrame, feature_names: list[str]) -> dict[str, bool]:
    """Pure: the training set's own gates (enough rows, both classes, no all-missing feature)."""
    holdout = frame[frame["holdout"]]
    return {
        "holdout_rows_at_least_min": len(holdout) >= MIN_HOLDOUT_ROWS,
        "both_classes_in_train": frame.loc[~frame["holdout"], "label"].nunique() == 2,
        "both_classes_in_holdout": holdout["label"].nunique() == 2,
        "no_feature_all_missing": bool(frame[feature_names].notna().any().all()),
    }


def train_challenger(
    settings: Settings,
    run_date: date,
    *,
    drift_from: date | None = None,
    evidence: dict[str, Any] | None = None,
    run_id: str = "manual",
    spark: SparkSession | None = None,
) -> dict[str, Any]:
    from batchscore.compute.spark import get_spark

    started = time.perf_counter()
    pipeline = settings.pipeline
    spark = spark or get_spark(settings.platform)
    end = cutoff_date(run_date, drift_from, settings)
    data = build_training_set(settings, end, spark, start=drift_from)
    names = load_feature_set(pipeline.features).names
    checks = data_checks(data.frame, names)
    trigger = {"run_id": run_id, "drift_from": drift_from.isoformat() if drift_from else None}
    version, _ = train_and_register(
        settings, end, data, {"trained_by": {**trigger, "drift_evidence": evidence or {}}}
    )
    registry = ModelRegistry(Lake(settings.platform.lake_url), pipeline.model.name)
    alias = pipeline.model.challenger_alias or DEFAULT_CHALLENGER_ALIAS
    current = registry.aliases().get(alias)
    registry.move_alias(
        alias,
        version.version,
        reason="retrained" + (f" after drift detected on {drift_from}" if drift_from else " on request"),
        expected_current=current,
        evidence={**trigger, "metrics": version.metadata["metrics"]},
    )
    out = retrain_dir(settings, run_date)
    out.mkdir(parents=True, exist_ok=True)
    holdout = data.frame[data.frame["holdout"]].drop(columns=["holdout"]).reset_index(drop=True)
    tmp = out / ".holdout.parquet.tmp"
    holdout.to_parquet(tmp, index=False)
    tmp.replace(out / "holdout.parquet")
    write_bytes_atomic(out / "data_checks.json", json.dumps(checks, sort_keys=True).encode())
    return {
        "stage": "train_challenger",
        "model_version": version.version,
        "labels_landed_by": end.isoformat(),
        "training_window": version.metadata["training_window"],
        "rows": len(data.frame),
        "data_checks": checks,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _predict(version: ModelVersion, matrix: np.ndarray) -> np.ndarray:
    import xgboost as xgb

    booster = xgb.Booster(model_file=str(version.artifact("model.ubj")))
    return np.asarray(booster.inplace_predict(matrix), dtype=np.float64)


def throughput(version: ModelVersion, matrix: np.ndarray) -> float:
    """Rows per second the version scores on this machine (XGBoost, one process)."""
    import xgboost as xgb

    booster = xgb.Booster(model_file=str(version.artifact("model.ubj")))
    reps = max(1, THROUGHPUT_ROWS // max(len(matrix), 1))
    batch = np.tile(matrix, (reps, 1))
    booster.inplace_predict(batch[:100])
    started = time.perf_counter()
    booster.inplace_predict(batch)
    return len(batch) / max(time.perf_counter() - started, 1e-9)


def evaluate_versions(
    champion: ModelVersion | None, challenger: ModelVersion, holdout: pd.DataFrame, segment_column: str | None
) -> dict[str, Any]:
    """Score the same holdout with both versions: overall and per-segment metrics."""
    names = list(challenger.meta.feature_set.features)
    matrix = holdout[names].to_numpy(np.float32)
    labels = holdout["label"].to_numpy()
    result: dict[str, Any] = {"holdout_rows": len(holdout)}
    for role, version in (("challenger", challenger), ("champion", champion)):
        if version is None:
            result[role] = None
            continue
        if version.feature_set_hash != challenger.feature_set_hash:
            result[role] = {"version": version.version, "error": "different feature set: not comparable"}
            continue
        predicted = _predict(version, matrix)
        result[role] = {
            "version": version.version,
            **classification_metrics(labels, predicted),
            "segments": segment_metrics(labels, predicted, holdout[segment_column].to_numpy(), segment_column)
            if segment_column
            else {},
        }
    result["challenger"]["rows_per_s"] = round(throughput(challenger, matrix))
    result["challenger"]["artifact_bytes"] = sum(
        int(a.size or 0) for name, a in challenger.meta.artifacts.items() if name.startswith("model.")
    )
    return result


def shadow_evidence(settings: Settings, challenger_version: int) -> dict[str, Any] | None:
    """Labelled shadow scores of the challenger vs the champion's scores on the same rows, when
    the shadow table exists and the labels have landed (None otherwise)."""
    pipeline = settings.pipeline
    warehouse = open_warehouse(settings.platform.warehouse_url)
    shadow_table = f"shadow_{pipeline.scores_table}"
    exists = warehouse.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [shadow_table]
    )[0][0]
    if not exists:
        return None
    key = pipeline.dataset.entity_key
    rows = warehouse.query(
        f'SELECT s."{key}", s.run_date, s.score, c.score FROM "{shadow_table}" s '
        f'JOIN "{pipeline.scores_table}" c ON c."{key}" = s."{key}" AND c.run_date = s.run_date '
        "WHERE s.model_version = ? AND c.model_version <> ?",
        [challenger_version, challenger_version],
    )
    if not rows:
        return {"table": shadow_table, "labelled_rows": 0}
    frame = pd.DataFrame(rows, columns=[key, "run_date", "challenger", "champion"])
    lake = Lake(settings.platform.lake_url)
    label_parts = [p for p in lake.landed_raw(pipeline.labels.dataset) if lake.available(p)]
    if not label_parts:
        return {"table": shadow_table, "labelled_rows": 0}
    labels = pd.concat([pd.read_parquet(p) for p in label_parts], ignore_index=True)
    labels = labels.rename(columns={pipeline.labels.date_column: "run_date", pipeline.labels.column: "label"})
    labels["run_date"] = pd.to_datetime(labels["run_date"]).dt.date
    frame["run_date"] = pd.to_datetime(frame["run_date"]).dt.date
    joined = frame.merge(labels[[key, "run_date", "label"]], on=[key, "run_date"], how="inner")
    if joined.empty or joined["label"].nunique() < 2:
        return {"table": shadow_table, "labelled_rows": len(joined)}
    y = joined["label"].to_numpy()
    return {
        "table": shadow_table,
        "labelled_rows": len(joined),
        "challenger": classification_metrics(y, joined["challenger"].to_numpy()),
        "champion": classification_metrics(y, joined["champion"].to_numpy()),
    }


def evaluate(settings: Settings, run_date: date, challenger_version: int) -> dict[str, Any]:
    started = time.perf_counter()
    pipeline = settings.pipeline
    registry = ModelRegistry(Lake(settings.platform.lake_url), pipeline.model.name)
    champion_version = registry.aliases().get(pipeline.model.alias)
    champion = registry.get(champion_version) if champion_version is not None else None
    challenger = registry.get(challenger_version)
    holdout = pd.read_parquet(retrain_dir(settings, run_date) / "holdout.parquet")
    evaluation = evaluate_versions(champion, challenger, holdout, pipeline.drift.segment_column)
    evaluation["shadow"] = shadow_evidence(settings, challenger_version)
    write_bytes_atomic(
        retrain_dir(settings, run_date) / "evaluation.json",
        json.dumps(evaluation, indent=2, sort_keys=True, default=str).encode(),
    )
    return {"stage": "evaluate", **evaluation, "seconds": round(time.perf_counter() - started, 3)}


def promotion_gate(
    settings: Settings, run_date: date, evaluation: dict[str, Any], run_id: str = "manual"
) -> dict[str, Any]:
    pipeline = settings.pipeline
    out = retrain_dir(settings, run_date)
    checks = json.loads((out / "data_checks.json").read_text())
    decision, reasons = promotion_decision(
        pipeline.model.task,
        evaluation["challenger"],
        evaluation.get("champion"),
        pipeline.promotion,
        checks=checks,
        shadow=evaluation.get("shadow"),
    )
    against = reasons if decision == REJECT else []  # evidence records reasons against only
    challenger_version = int(evaluation["challenger"]["version"])
    champion = evaluation.get("champion") or {}
    registry = ModelRegistry(Lake(settings.platform.lake_url), pipeline.model.name)
    outcome = "rejected"
    if decision == PROMOTE and pipeline.promotion.auto:
        try:
            registry.move_alias(
                pipeline.model.alias,
                challenger_version,
                reason=f"promotion gate passed (retrain {run_id})",
                expected_current=champion.get("version"),
                evidence=_summary(evaluation),
            )
            outcome = "promoted"
        except AliasConflict as exc:
            against.append(f"not promoted: {exc}")
            outcome = "conflict"
    elif decision == PROMOTE:
        outcome = "awaiting_approval"
    evidence = {
        **_summary(evaluation),
        "reasons_against": against,
        "data_checks": checks,
        "auto": pipeline.promotion.auto,
        "budgets": pipeline.promotion.model_dump(),
        "evaluation": str(out / "evaluation.json"),
    }
    open_warehouse(settings.platform.warehouse_url).record_event(
        pipeline.name,
        run_date,
        pipeline.model.name,
        challenger_version,
        "promotion_gate",
        outcome,
        evidence,
        run_id,
    )
    if outcome == "awaiting_approval":
        send_alert(
            settings.platform.alert_webhook,
            f"batchscore {pipeline.name}: challenger v{challenger_version} passed the promotion gate; "
            f"promote with `batchscore models promote --pipeline {pipeline.name} --version {challenger_version}`",
            evidence,
        )
    return {"stage": "promotion_gate", "decision": outcome, "model_version": challenger_version, **evidence}


def _summary(evaluation: dict[str, Any]) -> dict[str, Any]:
    def brief(side: dict[str, Any] | None) -> dict[str, Any] | None:
        if side is None:
            return None
        return {
            k: side[k] for k in ("version", "auc", "logloss", "calibration_error", "segments") if k in side
        }

    return {
        "challenger": brief(evaluation["challenger"]),
        "champion": brief(evaluation.get("champion")),
        "holdout_rows": evaluation["holdout_rows"],
        "rows_per_s": evaluation["challenger"].get("rows_per_s"),
        "artifact_bytes": evaluation["challenger"].get("artifact_bytes"),
        "shadow": evaluation.get("shadow"),
    }


def run(
    settings: Settings,
    run_date: date,
    *,
    drift_from: date | None = None,
    evidence: dict[str, Any] | None = None,
    run_id: str = "manual",
    spark: SparkSession | None = None,
) -> dict[str, Any]:
    """All three stages in order (what the retrain DAG does, in one process)."""
    trained = train_challenger(
        settings, run_date, drift_from=drift_from, evidence=evidence, run_id=run_id, spark=spark
    )
    evaluation = evaluate(settings, run_date, trained["model_version"])
    return promotion_gate(settings, run_date, evaluation, run_id)


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument("--drift-from", type=date.fromisoformat, help="train on labelled days from here on")
    args = parser.parse_args(argv)
    try:
        print_result(run(load_settings(args.pipeline), args.date, drift_from=args.drift_from))
    except TrainingError as exc:
        print(f"retrain failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main(sys.argv[1:])
