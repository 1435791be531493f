"""Render the model-health page of one pipeline and day from the warehouse.

Reads the outcome tables, the day's drift metrics, published slices, run history and (when the
pipeline has them) reason codes over `health.window_days` up to the day, and writes one
offline HTML file to `reports/health/<pipeline>/dt=<day>/health.html` (mirrored to an S3 lake).
A table without rows yet gives a section that says why, never a failure.

    python -m jobs.health --pipeline churn --date 2026-11-21 [--model-version 1]
"""

from __future__ import annotations

import sys
import time
from datetime import date
from typing import Any

from batchscore.models.scoring import SCORE_COLUMN
from batchscore.quality.health import write_health_page
from batchscore.quality.health_data import load_health
from batchscore.settings import Settings, load_settings
from batchscore.storage.lake import Lake
from batchscore.storage.warehouse import open_warehouse


def run(settings: Settings, run_date: date, model_version: int | None = None) -> dict[str, Any]:
    """Load the day's health data and write its page; `model_version` is the run's pinned one
    (without it, the version last published as champion that day)."""
    started = time.perf_counter()
    pipeline = settings.pipeline
    warehouse = open_warehouse(settings.platform.warehouse_url)
    warehouse.migrate()
    data = load_health(
        warehouse,
        pipeline,
        run_date,
        prediction_column=SCORE_COLUMN,
        window_days=pipeline.health.window_days,
        model_version=model_version,
    )
    lake = Lake(settings.platform.lake_url, settings.platform)
    folder = lake.reports_dir("health", pipeline.name, run_date)
    page = write_health_page(data, folder)
    lake.push_tree(folder)
    return {
        "stage": "health_page",
        "report": str(page),
        "model_version": data.model_version,
        "realized_days": len({p.run_date for p in data.performance if p.kind == "realized"}),
        "estimated_days": len({p.run_date for p in data.performance if p.kind == "estimated"}),
        "stability_days": len(data.stability),
        "drifted_features": [row.feature for row in data.drift if row.drifted],
        "reasons_enabled": data.reasons_enabled,
        "seconds": round(time.perf_counter() - started, 3),
    }


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument(
        "--model-version", type=int, help="the run's model version (default: the day's champion)"
    )
    args = parser.parse_args(argv)
    print_result(run(load_settings(args.pipeline), args.date, args.model_version))


if __name__ == "__main__":
    main(sys.argv[1:])
