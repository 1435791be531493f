"""Validate one day's raw, features or scores partition against its Great Expectations suite.

A failed gate raises with a message naming the pipeline, dataset, partition and each failed
expectation; the JSON result and an HTML report go to `<lake>/reports/validation/`.

    python -m jobs.validate --pipeline churn --date 2026-11-21 --stage raw
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from batchscore.lake import Lake, PartitionError
from batchscore.settings import Settings, load_settings

STAGES = ("raw", "features", "scores")


def partition_for(
    settings: Settings, lake: Lake, stage: str, run_date: date, model_version: int | None
) -> tuple[str, Path]:
    """(dataset name, partition path) that a stage's gate checks."""
    pipeline = settings.pipeline
    if stage == "raw":
        return pipeline.dataset.name, lake.raw_partition(pipeline.dataset.name, run_date)
    if stage == "features":
        return f"{pipeline.name}_features", lake.features_partition(pipeline.name, run_date)
    if stage == "scores":
        if model_version is None:
            raise ValueError("validating scores needs the run's model version")
        return f"{pipeline.name}_scores", lake.scores_partition(pipeline.name, model_version, run_date)
    raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")


def read_partition(lake: Lake, partition: Path) -> pa.Table:
    """The whole partition as one Arrow table; a corrupt or truncated file fails clearly."""
    files = lake.require_complete(partition)
    try:
        return pa.concat_tables([pq.read_table(path) for path in files], promote_options="none")
    except (pa.ArrowInvalid, OSError) as exc:
        raise PartitionError(f"partition {partition} is unreadable: {exc}") from exc


def run(settings: Settings, run_date: date, stage: str, model_version: int | None = None) -> dict[str, Any]:
    from batchscore.validation import validate_frame

    lake = Lake(settings.platform.lake_url)
    dataset, partition = partition_for(settings, lake, stage, run_date, model_version)
    frame = read_partition(lake, partition).to_pandas()
    report_dir = lake.reports_dir("validation", settings.pipeline.name, run_date, stage)
    try:
        outcome = validate_frame(
            frame,
            settings.pipeline.expectations_dir / f"{stage}.json",
            pipeline=settings.pipeline.name,
            dataset=dataset,
            stage=stage,
            partition=str(partition),
            report_dir=report_dir,
        )
    finally:
        lake.push_tree(report_dir)  # an S3 lake keeps the reports too, failed ones included
    return {
        "stage": f"validate_{stage}",
        "rows": outcome.rows,
        "evaluated": outcome.evaluated,
        "passed": outcome.passed,
        "warnings": [f.type for f in outcome.failed if f.severity == "warning"],
        "report": outcome.html_path,
        "seconds": round(outcome.seconds, 3),
    }


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, choices=STAGES)
    parser.add_argument("--model-version", type=int, help="needed for --stage scores")
    args = parser.parse_args(argv)
    print_result(run(load_settings(args.pipeline), args.date, args.stage, args.model_version))


if __name__ == "__main__":
    main(sys.argv[1:])
