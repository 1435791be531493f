"""Validate one day's raw, features or scores partition against its Great Expectations suite.

A failed gate raises with a message naming the pipeline, dataset, partition and each failed
expectation; the JSON result and an HTML report go to `<lake>/reports/validation/`.

    python -m jobs.validate --pipeline churn --date 2026-11-21 --stage raw
"""

from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchscore.settings import Settings, ValidationSettings, load_settings
from batchscore.storage.lake import Lake, PartitionError
from batchscore.storage.parquet import Footprint, read_footprint, read_partition

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from batchscore.quality.suites import Suite

log = logging.getLogger(__name__)

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


def choose_engine(footprint: Footprint, limits: ValidationSettings) -> str:
    """pandas over Arrow while the partition fits comfortably in memory, Spark beyond."""
    if footprint.rows > limits.pandas_max_rows or footprint.bytes > limits.pandas_max_bytes:
        return "spark"
    return "pandas"


def with_pii_mask(suite: Suite, settings: Settings) -> Suite:
    """The suite with the pipeline's PII columns masked in its results (hashed with the deployment key)."""
    from dataclasses import replace

    from batchscore.quality.pii import PiiMask

    key = settings.platform.pii_key
    mask = PiiMask.of(settings.pipeline.dataset.pii_columns, key.get_secret_value() if key else None)
    return replace(suite, pii=mask)


def run(
    settings: Settings,
    run_date: date,
    stage: str,
    model_version: int | None = None,
    spark: SparkSession | None = None,
) -> dict[str, Any]:
    from batchscore.quality.suites import load_suite

    pipeline = settings.pipeline
    lake = Lake(settings.platform.lake_url)
    suite = with_pii_mask(load_suite(pipeline.expectations_dir / f"{stage}.json"), settings)
    dataset, partition = partition_for(settings, lake, stage, run_date, model_version)
    footprint = read_footprint(lake, partition)
    if footprint.mixed_schemas:
        raise PartitionError(f"partition {partition} mixes schemas: {'; '.join(footprint.mixed_schemas)}")
    engine = choose_engine(footprint, pipeline.validation)
    report_dir = lake.reports_dir("validation", pipeline.name, run_date, stage)
    where: dict[str, Any] = {
        "pipeline": pipeline.name,
        "dataset": dataset,
        "stage": stage,
        "partition": str(partition),
        "report_dir": report_dir,
    }
    try:
        outcome, quarantine = _gate(settings, lake, suite, run_date, engine, footprint, where, spark)
    finally:
        lake.push_tree(report_dir)  # an S3 lake keeps the reports too, failed ones included
    if outcome.failed:  # warning-only expectations: reported, the gate still passes
        log.warning("%s", outcome.summary())
    result = {
        "stage": f"validate_{stage}",
        "engine": outcome.engine,
        "workers": outcome.workers,
        "rows": outcome.rows if quarantine is None else quarantine["rows"],
        "evaluated": outcome.evaluated,
        "passed": outcome.passed,
        "warnings": [f.describe() for f in outcome.failed if f.severity == "warning"],
        "report": outcome.html_path,
        "seconds": round(outcome.seconds, 3),
    }
    if quarantine is not None:
        result |= {"quarantined_rows": quarantine["quarantined_rows"], "quarantine": quarantine}
    return result


def _gate(
    settings: Settings,
    lake: Lake,
    suite: Suite,
    run_date: date,
    engine: str,
    footprint: Footprint,
    where: dict[str, Any],
    spark: SparkSession | None,
) -> tuple[Any, dict[str, Any] | None]:
    """Run the gate on its engine (with the quarantine's row judgement first, where it applies):
    (outcome, quarantine summary or None)."""
    from batchscore.quality.validation import validate_spark, validate_table

    partition = Path(where["partition"])
    if quarantines(settings, where["stage"], suite, footprint):
        from batchscore.quality.quarantine_gate import gate_raw, gate_raw_in_parts

        if engine == "spark":
            from batchscore.compute.spark import get_spark

            spark = spark or get_spark(settings.platform)
            return gate_raw_in_parts(settings, lake, suite, run_date, footprint, where, spark)
        table = read_partition(partition, footprint.files)
        return gate_raw(settings, lake, suite, run_date, table, where)
    if engine == "pandas":
        table = read_partition(partition, footprint.files)
        workers = settings.pipeline.validation.pandas_workers
        return validate_table(table, suite, workers=workers, **where), None
    from batchscore.compute.spark import get_spark

    spark = spark or get_spark(settings.platform)
    frame = spark.read.parquet(str(partition))
    return validate_spark(frame, footprint.schema, footprint.rows, suite, **where), None


def quarantines(settings: Settings, stage: str, suite: Suite, footprint: Footprint) -> bool:
    """Whether this gate holds bad rows aside: the raw stage of a pipeline with a quarantine,
    on a partition whose schema meets the contract (a broken contract fails the whole day)."""
    from batchscore.quality.suites import contract_violations

    if stage != "raw" or settings.pipeline.validation.quarantine is None:
        return False
    return not contract_violations(suite.schema, footprint.schema)


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, choices=STAGES)
    parser.add_argument("--model-version", type=int, help="needed for --stage scores")
    args = parser.parse_args(argv)
    print_result(run(load_settings(args.pipeline), args.date, args.stage, args.model_version))


if __name__ == "__main__":
    main(sys.argv[1:])
