"""Measure drift of one day's features and scores against the model's training reference.

The gate's statistics (PSI by default, KS or Wasserstein per feature) are computed natively
on the whole partition and per segment; Evidently renders the HTML and JSON report from a
deterministic sample, with the gate's methods and thresholds. Metrics go to `drift_metrics`.

    python -m jobs.drift --pipeline churn --date 2026-11-21 --model-version 1
"""

from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from batchscore.models.registry import ModelRegistry, ModelVersion
from batchscore.models.scoring import SCORE_COLUMN
from batchscore.quality.drift import DriftResult
from batchscore.quality.drift_evidence import DriftReport
from batchscore.settings import Settings, load_settings
from batchscore.storage.lake import Lake
from batchscore.storage.parquet import read_partition
from batchscore.storage.warehouse import open_warehouse


def current_frame(lake: Lake, settings: Settings, run_date: date, model_version: int) -> pd.DataFrame:
    """Today's features joined with today's scores, keyed by entity."""
    pipeline = settings.pipeline
    key = pipeline.dataset.entity_key
    # One block per column and Arrow's buffers freed as they convert: no second copy of the day.
    features_path = lake.features_partition(pipeline.name, run_date)
    table = read_partition(features_path, lake.require_complete(features_path))
    features = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    scores_path = lake.scores_partition(pipeline.name, model_version, run_date)
    scores = read_partition(scores_path, lake.require_complete(scores_path))
    return with_scores(features, scores.column(key).to_numpy(), scores.column(SCORE_COLUMN).to_numpy(), key)


def with_scores(features: pd.DataFrame, keys: np.ndarray, scores: np.ndarray, key: str) -> pd.DataFrame:
    """`features` (in its order) with each row's score added in place, NaN where it has none:
    the left join `features.merge(scores, on=key, how="left", validate="one_to_one")` by a hash
    lookup, without copying the day's features."""
    index = pd.Index(keys)
    if not index.is_unique or not features[key].is_unique:
        raise pd.errors.MergeError(f"{key} is not unique in the features or the scores of the day")
    position = index.get_indexer(features[key].to_numpy())
    values = np.asarray(scores, dtype=np.float64)[position]
    values[position < 0] = np.nan
    features[SCORE_COLUMN] = values
    return features


def run(settings: Settings, run_date: date, model_version: int) -> DriftReport:
    """Drift of the day's features and scores against the model's reference: statistics to the
    warehouse, the Evidently report to the lake, and the evidence the gate decides on."""
    from batchscore.quality.drift import compute_drift

    started = time.perf_counter()
    pipeline = settings.pipeline
    lake = Lake(settings.platform.lake_url)
    version = ModelRegistry(lake, pipeline.model.name).get(model_version)
    names = list(version.meta.feature_set.features)
    reference = pq.read_table(version.artifact("reference.parquet")).to_pandas()
    current = current_frame(lake, settings, run_date, model_version)

    drift = pipeline.drift
    columns = [*names, SCORE_COLUMN]
    methods = {c: drift.method_for(c) for c in columns}
    thresholds = {c: drift.threshold_for(c) for c in columns}
    result = compute_drift(
        reference,
        current,
        names,
        methods=methods,
        thresholds=thresholds,
        prediction_column=SCORE_COLUMN,
        segment_column=drift.segment_column,
        min_segment_rows=drift.min_segment_rows,
    )
    title = f"{pipeline.name} {run_date.isoformat()}: model v{model_version} vs its training reference"
    out_dir = lake.reports_dir("drift", pipeline.name, run_date)
    reporting = time.perf_counter()
    html, json_path, sample = report(settings, reference, current, names, out_dir, title, methods, thresholds)
    report_seconds = time.perf_counter() - reporting
    lake.push_tree(lake.reports_dir("drift", pipeline.name, run_date))
    attribution = attribution_metrics(settings, lake, version, run_date, reference, names)
    open_warehouse(settings.platform.warehouse_url).replace_drift_metrics(
        pipeline.name, run_date, model_version, metric_rows(result) + attribution
    )
    stage_result = {
        "stage": "drift",
        "rows": result.current_rows,
        **summarize(result),
        "report": str(html),
        "report_json": str(json_path),
        "report_sample": sample,
        "attribution_shifted": sorted(r["feature"] for r in attribution if r["drifted"]),
        "drift_seconds": round(result.seconds, 3),
        "report_seconds": round(report_seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return DriftReport.from_xcom(stage_result)


def report(
    settings: Settings,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    names: list[str],
    out_dir: Path,
    title: str,
    methods: dict[str, str],
    thresholds: dict[str, float],
) -> tuple[Path, Path, dict[str, Any]]:
    """The Evidently report from `drift.report_sample_rows` rows of each side (deterministic),
    and the sample it used (rows of all, and the note the report shows)."""
    from batchscore.quality.drift_report import deterministic_sample, sample_note, write_drift_report

    key, rows = settings.pipeline.dataset.entity_key, settings.pipeline.drift.report_sample_rows
    reference_sample = deterministic_sample(reference, rows, key)
    current_sample = deterministic_sample(current, rows, key)
    sample = {
        "reference_rows": len(reference_sample),
        "reference_total_rows": len(reference),
        "current_rows": len(current_sample),
        "current_total_rows": len(current),
    }
    html, json_path = write_drift_report(
        reference_sample,
        current_sample,
        names,
        out_dir,
        title=title,
        prediction_column=SCORE_COLUMN,
        methods=methods,
        thresholds=thresholds,
        sample=sample,
    )
    return html, json_path, {**sample, "note": sample_note(sample)}


def attribution_metrics(
    settings: Settings,
    lake: Lake,
    version: ModelVersion,
    run_date: date,
    reference: pd.DataFrame,
    names: list[str],
) -> list[dict[str, Any]]:
    """Attribution drift rows (`batchscore.quality.attribution`) when the day has reason codes."""
    from batchscore.models.reasons import reference_attribution
    from batchscore.quality.attribution import attribution_rows
    from batchscore.storage.manifest import ReasonsManifest, read_manifest

    explain = settings.pipeline.explain
    reasons = lake.reasons_partition(settings.pipeline.name, version.version, run_date)
    if explain is None or not lake.available(reasons):
        return []
    manifest = read_manifest(reasons, ReasonsManifest, "reasons partition")
    today = manifest.need(manifest.mean_abs_contribution, "mean_abs_contribution")
    artifact = str(version.artifact("model.ubj"))
    expected = reference_attribution(artifact, reference, names, explain.method == "approx", version.task)
    return attribution_rows(today, expected)


def metric_rows(result: DriftResult) -> list[dict[str, Any]]:
    """One `drift_metrics` row per (segment, column): the statistic, its threshold, the verdict."""
    return [
        {
            "segment": f.segment,
            "feature": f.feature,
            "method": f.method,
            "statistic": f.statistic,
            "threshold": f.threshold,
            "drifted": f.drifted,
        }
        for f in result.all_metrics()
    ]


def summarize(result: DriftResult) -> dict[str, Any]:
    """The evidence the gate decides on: drifted shares and the prediction's drift, overall and
    per segment."""
    prediction = result.prediction
    return {
        "drifted_share": round(result.drifted_share, 4),
        "drifted_features": result.drifted_features(),
        "prediction_method": prediction.method if prediction else None,
        "prediction_statistic": round(prediction.statistic, 6) if prediction else None,
        "prediction_drifted": bool(prediction and prediction.drifted),
        "segments": {
            seg.segment: {
                "rows": seg.current_rows,
                "drifted_share": round(seg.drifted_share, 4),
                "drifted_features": seg.drifted_features(),
                "prediction_drifted": bool(seg.prediction and seg.prediction.drifted),
            }
            for seg in result.segments
        },
    }


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument("--model-version", type=int, required=True)
    args = parser.parse_args(argv)
    print_result(run(load_settings(args.pipeline), args.date, args.model_version).to_xcom())


if __name__ == "__main__":
    main(sys.argv[1:])
