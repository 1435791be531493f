"""Build the features partition for one day from the raw partition, with the shared feature code.

spark-submit --py-files var/dist/batchscore.zip jobs/build_features.py --pipeline churn --date 2026-11-21
"""

from __future__ import annotations

import sys
import time
from datetime import date
from typing import TYPE_CHECKING, Any

from batchscore.quality.quarantine_gate import features_source
from batchscore.settings import Settings, load_settings
from batchscore.storage.lake import Lake, partition_checksum
from batchscore.storage.parquet import partition_rows
from batchscore.storage.reuse import code_hashes, digest, record_stage, reusable
from features import FeatureSet, compute_features, load_feature_set

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

STAGE_MODULE = "jobs.build_features"
"""This stage's module (`__name__` is `__main__` when run as a script): the code its output
depends on is everything it imports, with the pipeline's feature module and what that imports."""


def transform(raw: DataFrame, feature_set: FeatureSet) -> DataFrame:
    """Pure: raw entity rows in, entity key plus float32 features out."""
    return compute_features(raw, feature_set)


def features_fingerprint(settings: Settings, feature_set: FeatureSet, input_checksum: str) -> str:
    """build_features: the raw partition's checksum, the feature set's definitions, and the code
    of this stage and of the feature module, with every first-party module they import."""
    pipeline = settings.pipeline
    return digest(
        {
            "stage": "build_features",
            "input_checksum": input_checksum,
            "feature_set": feature_set.content_hash,
            "code": code_hashes([STAGE_MODULE, pipeline.features]),
            "dataset": pipeline.dataset.model_dump(),
        }
    )


def run(
    settings: Settings, run_date: date, spark: SparkSession | None = None, force: bool = False
) -> dict[str, Any]:
    """Build the day's features partition (from the rows validate_raw kept, under a quarantine);
    a complete one with this run's fingerprint (same raw partition and kept rows, feature set
    and feature code) is reused as it is, unless `force`."""
    from batchscore.compute.spark import get_spark

    started = time.perf_counter()
    pipeline = settings.pipeline
    lake = Lake(settings.platform.lake_url)
    feature_set = load_feature_set(pipeline.features)
    raw_path = lake.raw_partition(pipeline.dataset.name, run_date)
    files = lake.require_complete(raw_path)
    input_checksum = partition_checksum(raw_path)
    files, held = features_source(settings, lake, run_date, files, input_checksum)
    fingerprint = features_fingerprint(
        settings, feature_set, input_checksum if held is None else f"{input_checksum} ({held})"
    )
    final = lake.features_partition(pipeline.name, run_date)
    reused = None if force else reusable(lake, [final], fingerprint, started)
    if reused is not None:
        return reused
    starting = time.perf_counter()
    spark = spark or get_spark(settings.platform)
    spark_start = time.perf_counter() - starting

    features = transform(spark.read.parquet(*[str(f) for f in files]), feature_set)
    with lake.staged_partition(final) as staging:
        features.write.parquet(str(staging))
        rows = partition_rows(staging)
        result = {
            "stage": "build_features",
            "rows": rows,
            "path": str(final),
            "feature_set_hash": feature_set.content_hash,
            "input_checksum": input_checksum,
            "fingerprint": fingerprint,
            "seconds": round(time.perf_counter() - started, 3),
            "spark_session_seconds": round(spark_start, 3),  # getting the session, of those seconds
        }
        record_stage(
            staging,
            fingerprint,
            result,
            pipeline=pipeline.name,
            run_date=run_date.isoformat(),
            feature_set={
                "name": feature_set.name,
                "version": feature_set.version,
                "hash": feature_set.content_hash,
            },
            columns=[feature_set.entity_key, *feature_set.names],
            rows=rows,
            input_partition=str(raw_path),
            input_checksum=input_checksum,
        )
    return {**result, "reused": False, "seconds": round(time.perf_counter() - started, 3)}


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when the partition is reusable")
    args = parser.parse_args(argv)
    print_result(run(load_settings(args.pipeline), args.date, force=args.force))


if __name__ == "__main__":
    main(sys.argv[1:])
