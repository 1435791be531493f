"""Score one day's features partition with a pinned model version (and the challenger, in shadow).

Spark distributes the work; Python workers read the Parquet row groups themselves, so no
row crosses the JVM. The driver plans work items from the Parquet footers, one task per
item; each task writes one file per model under a task-attempt-unique name and returns
only those names; the driver moves the reported files into the staged partition and
commits it (`_SUCCESS` + rename). Files of failed or speculative attempts are never
reported, so they are deleted with the staging folder, never committed.

spark-submit --py-files var/dist/batchscore.zip jobs/score.py --pipeline churn --date 2026-11-21 [--model-version N]
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from datetime import date
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from batchscore.models.devices import resolve_device
from batchscore.models.inference import ModelRef, ScoringError
from batchscore.models.reasons import ExplainSpec, commit_reasons
from batchscore.models.registry import BACKEND_ARTIFACTS, ModelRegistry, ModelVersion, RegistryError
from batchscore.models.scoring import (
    TASK_RESULT_DDL,
    ScoringPass,
    WorkItem,
    output_schema,
    plan_work,
    score_work_items,
    ship_model,
    task_count,
    threads_per_task,
)
from batchscore.settings import Settings, load_settings
from batchscore.storage.lake import Lake, partition_checksum
from features import load_feature_set
from jobs.build_features import partition_rows, read_manifest
from jobs.reuse import reusable, scores_fingerprint
from jobs.score_pass import explain_of, manifest_writer, pass_outputs

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

MAX_TASK_ROWS = 2_000_000


def model_ref(settings: Settings, version: ModelVersion) -> ModelRef:
    """Describe a model version for executors, after checking its artifact's checksum here."""
    backend = version.backend(settings.pipeline.inference.backend)
    artifact = version.artifact(BACKEND_ARTIFACTS[backend])
    return ModelRef(
        model=version.model,
        version=version.version,
        backend=backend,
        artifact_path=str(artifact),
        sha256=version.metadata["artifacts"][artifact.name]["sha256"],
        feature_names=version.feature_order,
        device=settings.pipeline.inference.device,
        task=version.task,
        classes=tuple(version.metadata.get("classes") or ()) if version.task == "multiclass" else (),
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


def challenger_of_day(settings: Settings, registry: ModelRegistry, run_date: date) -> int | None:
    """The challenger alias's version as it stood on `run_date`, or None (not configured or not set)."""
    alias = settings.pipeline.model.challenger_alias
    if alias is None:
        return None
    try:
        return registry.resolve_for_day(alias, run_date).version.version
    except RegistryError:
        log.info("no %r alias on %s for %s: no shadow scoring", alias, registry.model, run_date)
        return None


def resolve_challenger(
    registry: ModelRegistry,
    challenger_version: int | None,
    champion: int,
    manifest: dict[str, Any],
    code_hash: str,
) -> ModelVersion | None:
    """The challenger to shadow-score, or None (none pinned, same as the champion, or trained on
    another feature set: the champion is scored regardless, the reason is logged)."""
    if challenger_version is None:
        return None
    challenger = registry.get(challenger_version)
    if challenger.version == champion:
        log.info("challenger v%s is the champion: no shadow scoring", champion)
        return None
    try:
        check_feature_set(challenger, manifest, code_hash)
    except ScoringError as exc:
        log.warning("challenger not shadow-scored: %s", exc)
        return None
    return challenger


def cluster_shape(spark: SparkSession) -> tuple[int, int, int]:
    """(cores for Python tasks in all, cores per task, cores per executor) of this Spark app."""
    conf = spark.sparkContext.getConf()
    total = spark.sparkContext.defaultParallelism
    task_cpus = int(conf.get("spark.task.cpus", "1"))
    executor_cores = int(conf.get("spark.executor.cores", str(total)))
    return total, task_cpus, executor_cores


def transform(spark: SparkSession, spec: ScoringPass) -> DataFrame:
    """Pure: one Spark task per work item; each returns (item, model_version, file, rows, …)."""
    items = len(spec.items)
    return spark.range(0, items, 1, items).mapInArrow(partial(score_work_items, spec=spec), TASK_RESULT_DDL)


def commit_task_outputs(
    reports: Iterable[dict[str, Any]], items: Sequence[WorkItem], stagings: dict[int, Path]
) -> dict[int, int]:
    """Move each reported file into its model's staging folder as `part-<item>.parquet`.

    Only files reported by the successful attempt of each task are moved; anything else in
    the attempts folder (failed or speculative attempts) is left there to be deleted with it.
    Every item must be reported exactly once per model, with the rows its footers promised.
    """
    expected = {item.index: item.rows for item in items}
    seen: dict[int, dict[int, str]] = {version: {} for version in stagings}
    for report in reports:
        by_item = seen[int(report["model_version"])]
        index = int(report["item"])
        if index in by_item or index not in expected or int(report["rows"]) != expected[index]:
            raise ScoringError(f"unexpected task report {report}; nothing is committed")
        by_item[index] = str(report["file"])
    rows: dict[int, int] = {}
    for version, by_item in seen.items():
        if set(by_item) != set(expected):
            missing = sorted(set(expected) - set(by_item))
            raise ScoringError(
                f"model v{version}: work items {missing} reported no output; nothing is committed"
            )
        staging = stagings[version]
        staging.mkdir(parents=True, exist_ok=True)
        for index, file in sorted(by_item.items()):
            os.rename(file, staging / f"part-{index:05d}.parquet")
        rows[version] = sum(expected.values())
    return rows


def prepared_refs(
    settings: Settings, spark: SparkSession, versions: Sequence[ModelVersion]
) -> tuple[ModelRef, ...]:
    """Checked model references, shipped to the executors when Spark runs on a cluster."""
    from batchscore.compute.spark import is_cluster

    refs = tuple(model_ref(settings, v) for v in versions)
    if str(spark.sparkContext.master).startswith("local"):
        # The driver is the worker: fail before launching tasks when `cuda` cannot be met.
        for ref in refs:
            resolve_device(ref.device, ref.backend, ref.artifact_path)
    if is_cluster(spark.sparkContext.master or "local"):
        refs = tuple(ship_model(spark, ref, settings.platform.home / "var" / "spark-ship") for ref in refs)
    return refs


def run(
    settings: Settings,
    run_date: date,
    model_version: int,
    spark: SparkSession | None = None,
    challenger_version: int | None = None,
    challenger_pinned: bool = False,
    force: bool = False,
) -> dict[str, Any]:
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
    manifest = read_manifest(features_path)
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
        return reused
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
        int(manifest["rows"]),
        refs,
        finals,
        pipeline.dataset.entity_key,
        run_date,
        pipeline.inference.batch_rows,
        explain_of(settings, lake, refs[0], run_date),
        on_staged=manifest_writer(fingerprint, result_of),
    )
    return {**result_of(scored), "reused": False}


def pass_fingerprint(
    settings: Settings, features_path: Path, manifest: dict[str, Any], versions: Sequence[ModelVersion]
) -> str:
    """The scoring pass's fingerprint: the features partition's bytes and manifest, every model's
    artifact and the settings that change scores (`jobs.reuse.scores_fingerprint`)."""
    refs = [model_ref(settings, v) for v in versions]
    return scores_fingerprint(settings, manifest, partition_checksum(features_path), refs)


def stage_result(
    scored: dict[str, Any],
    manifest: dict[str, Any],
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
        "rows_in": manifest["rows"],
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


def score_partition(
    spark: SparkSession,
    lake: Lake,
    files: Sequence[Path],
    rows_in: int,
    refs: Sequence[ModelRef],
    finals: dict[int, Path],
    entity_key: str,
    run_date: date,
    batch_rows: int,
    explain: tuple[ExplainSpec, Path] | None = None,
    on_staged: Callable[[list[Path], dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Score the partition's files with every model in one pass; commit one partition per model.

    Each final partition is replaced atomically (staged, reported files only, `_SUCCESS`,
    rename); on any error none of them changes. With `explain` (spec, final reasons
    partition), the champion's reason codes are computed in the same tasks and committed to
    their own partition, tied to the scores by checksum (committed just before them).
    `on_staged` sees the staged partitions (scores and reasons) and the pass's outcome just
    before the commit (the score stage writes its manifests there).
    """
    total_cores, task_cpus, executor_cores = cluster_shape(spark)
    planned = plan_work(files, task_count(rows_in, total_cores // task_cpus, MAX_TASK_ROWS))
    threads = threads_per_task(total_cores, len(planned), task_cpus, executor_cores)
    key_type = key_type_of(files, entity_key)
    with ExitStack() as stack:
        stagings = {v: stack.enter_context(lake.staged_partition(final)) for v, final in finals.items()}
        reasons = stack.enter_context(lake.staged_partition(explain[1])) if explain else None
        first = stagings[refs[0].version]
        spec = ScoringPass(
            items=tuple(planned),
            refs=tuple(refs),
            entity_key=entity_key,
            run_date=run_date,
            attempts_dir=str(first.with_name(f"{first.name}.attempts")),
            batch_rows=batch_rows,
            threads=threads,
            key_type=key_type,
            explain=explain[0] if explain else None,
        )
        reports = collect_reports(transform(spark, spec)) if planned else []
        commit_task_outputs(reports, planned, stagings)
        if not planned:
            write_empty(stagings, entity_key, key_type, refs[0].classes)
        rows = {v: partition_rows(staging) for v, staging in stagings.items()}
        done: dict[str, Any] = {
            "rows": rows,
            "reports": reports,
            "tasks": len(planned),
            "threads_per_task": threads,
        }
        if explain and reasons is not None:
            reason_rows = commit_reasons(
                reports, len(planned), reasons, refs[0], explain[0], first, entity_key, key_type
            )
            done["reasons"] = {"rows": reason_rows, "path": str(explain[1]), "top_k": explain[0].top_k}
        if on_staged is not None:
            on_staged([*stagings.values(), *([reasons] if reasons is not None else [])], done)
    return done


def collect_reports(tasks: DataFrame) -> list[dict[str, Any]]:
    """Run the tasks; a ScoringError raised in a worker surfaces as one (not retried)."""
    try:
        return [row.asDict() for row in tasks.collect()]
    except Exception as exc:
        for line in str(exc).splitlines():
            if "ScoringError: " in line:
                raise ScoringError(line.split("ScoringError: ", 1)[1].strip()) from exc
        raise


def key_type_of(files: Sequence[Path], entity_key: str) -> pa.DataType:
    """The entity key's type in the features partition: string keys stay strings, integers int64."""
    import pyarrow.parquet as pq

    if not files:
        return pa.int64()
    key_type = pq.read_schema(files[0]).field(entity_key).type
    return pa.string() if pa.types.is_string(key_type) or pa.types.is_large_string(key_type) else pa.int64()


def write_empty(
    stagings: dict[int, Path], entity_key: str, key_type: pa.DataType, classes: Sequence[str] = ()
) -> None:
    """An empty features partition gives an empty scores partition (one file with the schema)."""
    import pyarrow.parquet as pq

    for staging in stagings.values():
        staging.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            output_schema(entity_key, key_type, classes).empty_table(), staging / "part-00000.parquet"
        )


def worker_model_loads(reports: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Models loaded so far by each Python worker process that ran a task (pid -> loads)."""
    loads: dict[str, int] = {}
    for report in reports:
        pid = str(report["pid"])
        loads[pid] = max(loads.get(pid, 0), int(report["loads"]))
    return loads


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument("--model-version", type=int, help="default: the version the alias points at now")
    parser.add_argument(
        "--challenger-version", type=int, help="default: the model.challenger_alias version, if any"
    )
    parser.add_argument("--force", action="store_true", help="rescore even when the scores are reusable")
    args = parser.parse_args(argv)
    settings = load_settings(args.pipeline)
    version = args.model_version
    if version is None:
        registry = ModelRegistry(Lake(settings.platform.lake_url), settings.pipeline.model.name)
        version = registry.resolve(settings.pipeline.model.alias).version
    print_result(
        run(settings, args.date, version, challenger_version=args.challenger_version, force=args.force)
    )


if __name__ == "__main__":
    main(sys.argv[1:])
