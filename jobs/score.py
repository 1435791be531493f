"""Score one day's features partition with a pinned model version, in Spark partitions.

spark-submit --py-files var/dist/batchscore.zip jobs/score.py --pipeline churn --date 2026-11-21 [--model-version N]
"""

from __future__ import annotations

import sys
import time
from datetime import date
from functools import partial
from typing import TYPE_CHECKING, Any

from batchscore.lake import Lake
from batchscore.registry import ModelRegistry, ModelVersion
from batchscore.scoring import ModelRef, ScoringError, choose_device, score_batches, ship_model
from batchscore.settings import Settings, load_settings
from features import load_feature_set
from jobs.build_features import partition_rows, read_manifest

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ARTIFACTS = {"xgboost": "model.ubj", "onnx": "model.onnx"}


def model_ref(settings: Settings, version: ModelVersion) -> ModelRef:
    """Describe the pinned model for executors, after checking its artifact's checksum."""
    backend = settings.pipeline.inference.backend
    artifact = version.artifact(ARTIFACTS[backend])
    return ModelRef(
        model=version.model,
        version=version.version,
        backend=backend,
        artifact_path=str(artifact),
        sha256=version.metadata["artifacts"][artifact.name]["sha256"],
        feature_names=tuple(version.metadata["feature_set"]["features"]),
        device=choose_device(settings.pipeline.inference.device, backend),
    )


def check_feature_set(version: ModelVersion, manifest: dict[str, Any], code_hash: str) -> None:
    """A model trained on feature set X refuses to score feature set Y."""
    trained_on = version.feature_set_hash
    built_with = manifest["feature_set"]["hash"]
    if not trained_on == built_with == code_hash:
        raise ScoringError(
            f"feature set mismatch: {version.model} v{version.version} was trained on {trained_on[:12]}…, "
            f"the features partition was built with {built_with[:12]}…, the code defines {code_hash[:12]}…; "
            "retrain the model or rebuild the features"
        )


def transform(features: DataFrame, ref: ModelRef, entity_key: str, run_date: date) -> DataFrame:
    """Pure: features in, (entity key, score, model_version, run_date) out, one Arrow batch at a time."""
    ddl = f"`{entity_key}` long, score double, model_version long, run_date date"
    return features.mapInArrow(partial(score_batches, ref=ref, entity_key=entity_key, run_date=run_date), ddl)


def run(
    settings: Settings, run_date: date, model_version: int, spark: SparkSession | None = None
) -> dict[str, Any]:
    from batchscore.spark import get_spark, is_cluster

    started = time.perf_counter()
    pipeline = settings.pipeline
    lake = Lake(settings.platform.lake_url)
    version = ModelRegistry(lake, pipeline.model.name).get(model_version)
    features_path = lake.features_partition(pipeline.name, run_date)
    lake.require_complete(features_path)
    manifest = read_manifest(features_path)
    check_feature_set(version, manifest, load_feature_set(pipeline.features).content_hash)
    ref = model_ref(settings, version)
    spark = spark or get_spark(settings.platform)
    if is_cluster(spark.sparkContext.master or "local"):
        ref = ship_model(spark, ref, settings.platform.home / "var" / "spark-ship")

    features = spark.read.parquet(str(features_path))
    scores = transform(features, ref, pipeline.dataset.entity_key, run_date)
    final = lake.scores_partition(pipeline.name, model_version, run_date)
    with lake.staged_partition(final) as staging:
        scores.write.parquet(str(staging))
        rows = partition_rows(staging)
    seconds = time.perf_counter() - started
    return {
        "stage": "score",
        "rows": rows,
        "rows_in": manifest["rows"],
        "path": str(final),
        "model_version": model_version,
        "backend": ref.backend,
        "device": ref.device,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1) if seconds else None,
    }


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument("--model-version", type=int, help="default: the version the alias points at now")
    args = parser.parse_args(argv)
    settings = load_settings(args.pipeline)
    version = args.model_version
    if version is None:
        registry = ModelRegistry(Lake(settings.platform.lake_url), settings.pipeline.model.name)
        version = registry.resolve(settings.pipeline.model.alias).version
    print_result(run(settings, args.date, version))


if __name__ == "__main__":
    main(sys.argv[1:])
