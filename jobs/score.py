"""Score one day's features partition with a pinned model version (and the challenger, in shadow).

Spark distributes the work (`batchscore.models.scoring_driver`); this stage picks the models,
reuses a complete output with the same fingerprint, and returns the stage's result.

spark-submit --py-files var/dist/batchscore.zip jobs/score.py --pipeline churn --date 2026-11-21 [--model-version N]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchscore.models.inference import ModelRef
from batchscore.models.registry import ModelRegistry, ModelVersion
from batchscore.models.scored import ScoreResult
from batchscore.models.scoring_driver import prepared_refs, score_partition, worker_model_loads
from batchscore.models.scoring_pass import (
    challenger_of_day,
    champion_of_day,
    check_feature_set,
    explain_of,
    manifest_writer,
    model_ref,
    pass_outputs,
    resolve_challenger,
    scores_fingerprint,
)
from batchscore.settings import Settings, load_settings
from batchscore.storage.lake import Lake, partition_checksum
from batchscore.storage.manifest import StageManifest
from batchscore.storage.reuse import features_manifest, reusable
from features import load_feature_set

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def run(
    settings: Settings,
    run_date: date,
    model_version: int,
    spark: SparkSession | None = None,
    challenger_version: int | None = None,
    challenger_pinned: bool = False,
    force: bool = False,
) -> ScoreResult:
    """Score the features partition of `run_date` with `model_version` (+ challenger in shadow:
    given, pinned by resolve_model, else `model.challenger_alias` as it stood on `run_date`).
    Complete outputs with this pass's fingerprint are reused, unless `force`."""
    from batchscore.compute.spark import get_spark

    started = time.perf_counter()
    pipeline = settings.pipeline
    lake = Lake(settings.platform.lake_url)
    registry = ModelRegistry(lake, pipeline.model.name)
    version = registry.get(model_version)
    features_path = lake.features_partition(pipeline.name, run_date)
    files = lake.require_complete(features_path)
    manifest = features_manifest(features_path)
    code_hash = load_feature_set(pipeline.features).content_hash
    check_feature_set(version, manifest, code_hash)
    if challenger_version is None and not challenger_pinned:
        challenger_version = challenger_of_day(settings, registry, run_date)
    challenger = resolve_challenger(registry, challenger_version, model_version, manifest, code_hash)
    versions = [v for v in (version, challenger) if v is not None]
    finals = {v.version: lake.scores_partition(pipeline.name, v.version, run_date) for v in versions}
    fingerprint = pass_fingerprint(settings, features_path, manifest, versions)
    outputs = pass_outputs(settings, lake, finals, run_date)
    if not force and (reused := reusable(lake, outputs, fingerprint, started)) is not None:
        return ScoreResult.from_xcom(reused)
    spark = spark or get_spark(settings.platform)
    refs = prepared_refs(settings, spark, versions)

    def result_of(scored: dict[str, Any]) -> dict[str, Any]:
        seconds = time.perf_counter() - started
        return {
            **stage_result(scored, manifest, finals, refs, challenger, seconds),
            "fingerprint": fingerprint,
        }

    scored = score_partition(
        spark,
        lake,
        files,
        manifest.need(manifest.rows, "rows"),
        refs,
        finals,
        pipeline.dataset.entity_key,
        run_date,
        pipeline.inference.batch_rows,
        explain_of(settings, lake, refs[0], run_date),
        on_staged=manifest_writer(fingerprint, result_of),
    )
    return ScoreResult.from_xcom({**result_of(scored), "reused": False})


def pass_fingerprint(
    settings: Settings, features_path: Path, manifest: StageManifest, versions: Sequence[ModelVersion]
) -> str:
    """The scoring pass's fingerprint: the features partition's bytes and manifest, every model's
    artifact and the settings that change scores (`scoring_pass.scores_fingerprint`)."""
    refs = [model_ref(settings, v) for v in versions]
    return scores_fingerprint(settings, manifest, partition_checksum(features_path), refs)


def stage_result(
    scored: dict[str, Any],
    manifest: StageManifest,
    finals: dict[int, Path],
    refs: Sequence[ModelRef],
    challenger: ModelVersion | None,
    seconds: float,
) -> dict[str, Any]:
    """The score stage's XCom: rows, where they went, the devices and tasks that scored them."""
    rows, reports = scored["rows"], scored["reports"]
    model_version = refs[0].version
    devices = sorted({str(r["device"]) for r in reports if r["model_version"] == model_version})
    result: dict[str, Any] = {
        "stage": "score",
        "rows": rows[model_version],
        "rows_in": manifest.rows,
        "path": str(finals[model_version]),
        "model_version": model_version,
        "backend": refs[0].backend,
        "device": ",".join(devices) or "cpu",
        "tasks": scored["tasks"],
        "threads_per_task": scored["threads_per_task"],
        "worker_model_loads": worker_model_loads(reports),
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows[model_version] / seconds, 1) if seconds else None,
        "challenger": None,
    }
    if "reasons" in scored:
        result["reasons"] = scored["reasons"]
    if challenger is not None:
        result["challenger"] = {
            "model_version": challenger.version,
            "rows": rows[challenger.version],
            "path": str(finals[challenger.version]),
        }
    return result


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument(
        "--model-version", type=int, help="default: the version the alias pointed at on --date"
    )
    parser.add_argument(
        "--challenger-version", type=int, help="default: the model.challenger_alias version, if any"
    )
    parser.add_argument("--force", action="store_true", help="rescore even when the scores are reusable")
    args = parser.parse_args(argv)
    settings = load_settings(args.pipeline)
    version = args.model_version
    if version is None:
        registry = ModelRegistry(Lake(settings.platform.lake_url), settings.pipeline.model.name)
        version = champion_of_day(settings, registry, args.date)
    print_result(
        run(
            settings, args.date, version, challenger_version=args.challenger_version, force=args.force
        ).to_xcom()
    )


if __name__ == "__main__":
    main(sys.argv[1:])
