"""Measure drift of one day's features and scores against the model's training reference.

The gate's PSI is computed natively on the whole partition; Evidently renders the HTML
and JSON report from a deterministic sample. Metrics go to the `drift_metrics` table.

    python -m jobs.drift --pipeline churn --date 2026-11-21 --model-version 1
"""

from __future__ import annotations

import sys
import time
from datetime import date
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from batchscore.lake import Lake
from batchscore.registry import ModelRegistry
from batchscore.scoring import SCORE_COLUMN
from batchscore.settings import Settings, load_settings
from batchscore.warehouse import open_warehouse
from jobs.validate import read_partition


def current_frame(lake: Lake, settings: Settings, run_date: date, model_version: int) -> pd.DataFrame:
    """Today's features joined with today's scores, keyed by entity."""
    pipeline = settings.pipeline
    key = pipeline.dataset.entity_key
    features = read_partition(lake, lake.features_partition(pipeline.name, run_date)).to_pandas()
    scores = read_partition(lake, lake.scores_partition(pipeline.name, model_version, run_date))
    scores_frame = scores.select([key, SCORE_COLUMN]).to_pandas()
    return features.merge(scores_frame, on=key, how="left", validate="one_to_one")


def run(settings: Settings, run_date: date, model_version: int) -> dict[str, Any]:
    from batchscore.drift import compute_drift, deterministic_sample, write_drift_report

    started = time.perf_counter()
    pipeline = settings.pipeline
    lake = Lake(settings.platform.lake_url)
    version = ModelRegistry(lake, pipeline.model.name).get(model_version)
    names = list(version.metadata["feature_set"]["features"])
    reference = pq.read_table(version.artifact("reference.parquet")).to_pandas()
    current = current_frame(lake, settings, run_date, model_version)

    result = compute_drift(
        reference,
        current,
        names,
        thresholds=dict(pipeline.drift.thresholds),
        default_threshold=pipeline.drift.threshold,
        prediction_column=SCORE_COLUMN,
    )
    key = pipeline.dataset.entity_key
    sample_rows = pipeline.drift.report_sample_rows
    html, json_path = write_drift_report(
        deterministic_sample(reference, sample_rows, key),
        deterministic_sample(current, sample_rows, key),
        names,
        lake.reports_dir("drift", pipeline.name, run_date),
        title=f"{pipeline.name} {run_date.isoformat()}: model v{model_version} vs its training reference",
        prediction_column=SCORE_COLUMN,
    )
    lake.push_tree(lake.reports_dir("drift", pipeline.name, run_date))
    rows = [
        {
            "feature": f.feature,
            "method": f.method,
            "statistic": f.statistic,
            "threshold": f.threshold,
            "drifted": f.drifted,
        }
        for f in [*result.features, *([result.prediction] if result.prediction else [])]
    ]
    open_warehouse(settings.platform.warehouse_url).replace_drift_metrics(
        pipeline.name, run_date, model_version, rows
    )
    return {
        "stage": "drift",
        "rows": result.current_rows,
        "drifted_share": round(result.drifted_share, 4),
        "drifted_features": result.drifted_features(),
        "prediction_psi": round(result.prediction.statistic, 4) if result.prediction else None,
        "report": str(html),
        "report_json": str(json_path),
        "psi_seconds": round(result.seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
    }


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument("--model-version", type=int, required=True)
    args = parser.parse_args(argv)
    print_result(run(load_settings(args.pipeline), args.date, args.model_version))


if __name__ == "__main__":
    main(sys.argv[1:])
