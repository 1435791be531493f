"""Evaluate published scores: estimated performance, realized performance as labels land, stability.

For run date D (nothing reads the wall clock):
- estimated (binary): CBPE's expected ROC AUC and accuracy of D's published scores, with their
  band, `kind = estimated` (other tasks: skipped, with the reason in the result);
- realized: for each day that label partitions landed in (D - lookback_days, D] refer to, all
  its labels landed by D joined to that day's published scores (champion and shadow slices),
  per segment, `kind = realized`; the day's realized rows are replaced, so late labels update
  them exactly once;
- stability: D's champion scores against the previous published day's (none on the first day).
Breached thresholds alert and are recorded in `model_events` (`performance_gate`,
`stability_gate`); a realized breach with `performance.trigger_retrain` asks for retraining.

`run_landed` is the realized part alone, for the label partition dt=D as it lands (the outcomes
DAG, `labels.schedule: partition`): the same rows the nightly run of D writes, replaced the same
way; estimates, stability, alerts and gates stay with the nightly run.

    python -m jobs.evaluate --pipeline churn --date 2026-11-21 --run-id manual-1
    python -m jobs.evaluate --pipeline churn --date 2026-11-21 --run-id manual-2 --realized-only
"""

from __future__ import annotations

import sys
import time
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from batchscore.quality import evaluation
from batchscore.quality import outcome_data as data
from batchscore.quality.evaluation import Scored
from batchscore.settings import Settings, load_settings
from batchscore.storage.lake import SUCCESS_MARKER, Lake, PartitionError
from batchscore.storage.warehouse import open_warehouse
from batchscore.storage.warehouse.multiclass import PREDICTED, probability_columns
from batchscore.telemetry.alerts import send_alert

if TYPE_CHECKING:
    from batchscore.storage.warehouse import Warehouse

ROLES = ("champion", "shadow")


def tables(settings: Settings) -> dict[str, str]:
    return {"champion": settings.pipeline.scores_table, "shadow": settings.pipeline.shadow_scores_table}


def scored_of(settings: Settings, frame: pd.DataFrame, segments: np.ndarray | None) -> Scored:
    """A slice's rows as aligned arrays (multiclass: the probability matrix and predicted index)."""
    model = settings.pipeline.model
    if model.task != "multiclass":
        return Scored(scores=frame["score"].to_numpy(dtype=np.float64), segments=segments)
    index = {name: i for i, name in enumerate(model.classes)}
    return Scored(
        scores=frame["score"].to_numpy(dtype=np.float64),
        segments=segments,
        probabilities=frame[probability_columns(model.classes)].to_numpy(dtype=np.float64),
        predicted=frame[PREDICTED].map(index).to_numpy(dtype=np.int64),
    )


def estimate(
    settings: Settings, warehouse: Warehouse, lake: Lake, run_date: date, run_id: str
) -> dict[str, Any]:
    """`kind = estimated` rows of D's published champion and shadow slices (binary only)."""
    pipeline = settings.pipeline
    if pipeline.model.task != "binary":
        return {"skipped": f"estimation applies to binary scores; {pipeline.name} is {pipeline.model.task}"}
    perf, key = pipeline.performance, pipeline.dataset.entity_key
    segments = data.segments_of(lake, settings, run_date)
    out: dict[str, Any] = {}
    for role, table in tables(settings).items():
        rows = []
        for s in data.published(warehouse, settings, table, run_date):
            frame = data.slice_scores(warehouse, settings, s)
            scored = scored_of(settings, frame, data.with_segments(frame, segments, key))
            found = evaluation.estimated_rows(
                scored,
                perf.decision_threshold,
                pipeline.drift.segment_column,
                pipeline.drift.min_segment_rows,
                perf.bootstrap_draws,
            )
            rows += [{**r, "model_name": s.model_name, "model_version": s.model_version} for r in found]
        if rows or role == "champion":
            warehouse.replace_performance(pipeline.name, run_date, role, "estimated", run_id, rows)
        if rows:
            out[role] = summary(rows, perf)
    return out or {"skipped": f"nothing published for {run_date}"}


def realize(
    settings: Settings, warehouse: Warehouse, lake: Lake, run_date: date, run_id: str
) -> dict[str, Any]:
    """`kind = realized` rows of every day whose labels landed in the look-back window."""
    days: dict[str, Any] = {}
    for label_date in data.label_dates(lake, settings, run_date):
        labels = data.labels_for_day(lake, settings, label_date, run_date)
        segments = data.segments_of(lake, settings, label_date)
        day: dict[str, Any] = {"labels": len(labels)}
        for role, table in tables(settings).items():
            rows = realized_for_slices(
                settings, warehouse, data.published(warehouse, settings, table, label_date), labels, segments
            )
            if rows or role == "champion":
                replaced = warehouse.replace_performance(
                    settings.pipeline.name, label_date, role, "realized", run_id, rows
                )
                day[role] = (
                    {**summary(rows, settings.pipeline.performance), "replaced_rows": replaced}
                    if rows
                    else "nothing published"
                )
        days[label_date.isoformat()] = day
    return days


def realized_for_slices(
    settings: Settings,
    warehouse: Warehouse,
    slices: list[data.Slice],
    labels: pd.DataFrame,
    segments: pd.DataFrame | None,
) -> list[dict[str, Any]]:
    """Realized rows of each slice: its scores inner-joined to the labels on the entity key."""
    pipeline = settings.pipeline
    key, column = pipeline.dataset.entity_key, pipeline.labels.column
    rows: list[dict[str, Any]] = []
    for s in slices:
        frame = data.slice_scores(warehouse, settings, s).merge(
            labels, on=key, how="inner", validate="one_to_one"
        )
        y = label_values(settings, frame[column])
        known = ~pd.isna(y) if pipeline.model.task != "multiclass" else y >= 0
        frame, y = frame[known], y[known]
        if frame.empty:
            continue
        found = evaluation.realized_rows(
            pipeline.model.task,
            np.asarray(y),
            scored_of(settings, frame, data.with_segments(frame, segments, key)),
            pipeline.performance.decision_threshold,
            pipeline.drift.segment_column,
            pipeline.drift.min_segment_rows,
            classes=len(pipeline.model.classes),
        )
        rows += [{**r, "model_name": s.model_name, "model_version": s.model_version} for r in found]
    return rows


def label_values(settings: Settings, labels: pd.Series) -> np.ndarray:
    """Labels as numbers: 0/1 (binary), the value (regression), the class index (multiclass;
    a class the model does not know is -1 and left out)."""
    model = settings.pipeline.model
    if model.task == "multiclass":
        index = {name: i for i, name in enumerate(model.classes)}
        return labels.map(lambda v: index.get(str(v), -1)).to_numpy(dtype=np.int64)
    return labels.to_numpy(dtype=np.float64)


def stabilize(settings: Settings, warehouse: Warehouse, run_date: date, run_id: str) -> dict[str, Any]:
    """D's champion scores against the previous published day's: one `score_stability` row."""
    pipeline = settings.pipeline
    table = pipeline.scores_table
    current = data.published(warehouse, settings, table, run_date)
    if not current:
        return {"skipped": f"nothing published for {run_date}"}
    previous = data.previous_published(warehouse, settings, table, run_date)
    if previous is None:
        return {"skipped": f"{run_date} is the first published day: nothing to compare with"}
    key = pipeline.dataset.entity_key
    now_frame = data.slice_scores(warehouse, settings, current[-1])
    before = data.slice_scores(warehouse, settings, previous)
    threshold = None if pipeline.model.task == "regression" else pipeline.performance.decision_threshold
    row = evaluation.stability(
        before[key].to_numpy(),
        before["score"].to_numpy(dtype=np.float64),
        now_frame[key].to_numpy(),
        now_frame["score"].to_numpy(dtype=np.float64),
        threshold,
    )
    row.update(
        model_version=current[-1].model_version,
        previous_run_date=previous.run_date,
        previous_model_version=previous.model_version,
    )
    warehouse.replace_stability(pipeline.name, run_date, run_id, row)
    return {**row, "previous_run_date": previous.run_date.isoformat()}  # JSON-safe for XCom


def summary(rows: list[dict[str, Any]], limits: Any) -> dict[str, Any]:
    """The highest model version's `all` rows as {metric: value} ([value, lower, upper] for
    estimates), its labeled or scored rows, and the thresholds they breach."""
    version = max(int(r["model_version"]) for r in rows)
    whole = [r for r in rows if r["segment"] == evaluation.ALL and int(r["model_version"]) == version]
    out: dict[str, Any] = {
        "model_version": version,
        "rows": max((r["row_count"] for r in whole), default=0),
        "breaches": evaluation.performance_breaches(whole, limits),
    }
    for r in whole:
        if r["metric"].startswith("calibration"):
            continue
        value = None if r["value"] is None else round(float(r["value"]), 6)
        if r.get("lower") is not None:
            out[r["metric"]] = [value, round(float(r["lower"]), 6), round(float(r["upper"]), 6)]
        else:
            out[r["metric"]] = value
    return out


def decide(
    settings: Settings,
    warehouse: Warehouse,
    run_date: date,
    run_id: str,
    found: dict[str, Any],
) -> dict[str, Any]:
    """Check the thresholds: alert on breaches, record the gates in `model_events`."""
    pipeline = settings.pipeline
    realized = [
        f"{day} realized {reason}"
        for day, evaluated in found["realized"].items()
        if isinstance(evaluated.get("champion"), dict)
        for reason in evaluated["champion"]["breaches"]
    ]
    estimated_champion = found["estimated"].get("champion") or {}
    estimated = [f"{run_date} estimated {reason}" for reason in estimated_champion.get("breaches", [])]
    stable = found["stability"]
    unstable = [] if "skipped" in stable else evaluation.stability_breaches(stable, pipeline.stability)
    version = champion_version(found)
    if version is not None and (
        estimated_champion or any(isinstance(d.get("champion"), dict) for d in found["realized"].values())
    ):
        record(
            settings, warehouse, run_date, version, run_id, "performance_gate", realized + estimated, found
        )
    if version is not None and "skipped" not in stable:
        record(settings, warehouse, run_date, version, run_id, "stability_gate", unstable, stable)
    return {
        "performance_breaches": realized + estimated,
        "stability_breaches": unstable,
        "alerted": bool(realized or estimated or unstable),
        "trigger_retrain": bool(realized) and pipeline.performance.trigger_retrain,
    }


def champion_version(found: dict[str, Any]) -> int | None:
    """The model version the gates are recorded for: the day's champion, else the newest one evaluated."""
    if isinstance(found["estimated"].get("champion"), dict):
        return int(found["estimated"]["champion"]["model_version"])
    if "model_version" in found["stability"]:
        return int(found["stability"]["model_version"])
    versions = [
        d["champion"]["model_version"]
        for d in found["realized"].values()
        if isinstance(d.get("champion"), dict)
    ]
    return max(versions) if versions else None


def record(
    settings: Settings,
    warehouse: Warehouse,
    run_date: date,
    version: int,
    run_id: str,
    event: str,
    reasons: list[str],
    evidence: dict[str, Any],
) -> None:
    """One gate's decision in `model_events`, and an alert when it found breaches."""
    pipeline = settings.pipeline
    decision = "breached" if reasons else "pass"
    details = {"reasons": reasons, "evidence": evidence}
    warehouse.record_event(
        pipeline.name, run_date, pipeline.model.name, version, event, decision, details, run_id
    )
    if reasons:
        what = "performance" if event == "performance_gate" else "score stability"
        send_alert(
            settings.platform.alert_webhook,
            f"batchscore {pipeline.name} {run_date.isoformat()}: {what} beyond its threshold",
            details,
        )


def run(settings: Settings, run_date: date, run_id: str) -> dict[str, Any]:
    """Estimated, realized and stability rows for run date D, then the thresholds (module docstring)."""
    started = time.perf_counter()
    warehouse = open_warehouse(settings.platform.warehouse_url)
    lake = Lake(settings.platform.lake_url)
    found: dict[str, Any] = {
        "estimated": estimate(settings, warehouse, lake, run_date, run_id),
        "realized": realize(settings, warehouse, lake, run_date, run_id),
        "stability": stabilize(settings, warehouse, run_date, run_id),
    }
    if not found["realized"]:
        found["realized_skipped"] = "no label partition landed in the look-back window"
    decided = decide(settings, warehouse, run_date, run_id, found)
    return {
        "stage": "evaluate",
        "run_date": run_date.isoformat(),
        "run_id": run_id,
        **found,
        **decided,
        "seconds": round(time.perf_counter() - started, 3),
    }


def run_landed(settings: Settings, arrival: date, run_id: str) -> dict[str, Any]:
    """Realized rows as the label partition dt=`arrival` lands: every day whose labels landed in
    (arrival - lookback_days, arrival], with the labels landed by `arrival` (as `run` does)."""
    started = time.perf_counter()
    lake = Lake(settings.platform.lake_url)
    dataset = settings.pipeline.labels.dataset
    if not lake.landed(lake.raw_partition(dataset, arrival)):
        raise PartitionError(
            f"label partition {dataset}/dt={arrival.isoformat()} was announced but has not landed "
            f"(no {SUCCESS_MARKER}): announce a partition once its {SUCCESS_MARKER} is written"
        )
    realized = realize(settings, open_warehouse(settings.platform.warehouse_url), lake, arrival, run_id)
    return {
        "stage": "realize",
        "run_date": arrival.isoformat(),
        "run_id": run_id,
        "label_partition": f"{dataset}/dt={arrival.isoformat()}",
        "realized": realized,
        "seconds": round(time.perf_counter() - started, 3),
    }


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument("--run-id", required=True)
    parser.add_argument(
        "--realized-only", action="store_true", help="only the realized rows of the label partition dt=DATE"
    )
    args = parser.parse_args(argv)
    job = run_landed if args.realized_only else run
    print_result(job(load_settings(args.pipeline), args.date, args.run_id))


if __name__ == "__main__":
    main(sys.argv[1:])
