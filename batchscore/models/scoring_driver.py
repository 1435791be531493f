"""The driver half of Spark scoring: plan work items from the Parquet footers, one Spark task
per item, commit only the files the successful attempts report.

Python workers read the Parquet row groups themselves (`scoring.score_work_items`), so no row
crosses the JVM. Each task writes one file per model under a task-attempt-unique name and
returns only those names; the driver moves the reported files into the staged partition and
commits it (`_SUCCESS` + rename). Files of failed or speculative attempts are never reported,
so they are deleted with the staging folder, never committed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from datetime import date
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from batchscore.models.devices import resolve_device
from batchscore.models.inference import ModelRef, ScoringError
from batchscore.models.reasons import commit_reasons
from batchscore.models.registry import ModelVersion
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
from batchscore.models.scoring_pass import ReasonCodes, model_ref
from batchscore.settings import Settings
from batchscore.storage.lake import Lake
from batchscore.storage.parquet import partition_rows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

MAX_TASK_ROWS = 2_000_000


def cluster_shape(spark: SparkSession) -> tuple[int, int, int]:
    """(cores for Python tasks in all, cores per task, cores per executor) of this Spark app."""
    conf = spark.sparkContext.getConf()
    total = spark.sparkContext.defaultParallelism
    task_cpus = int(conf.get("spark.task.cpus", "1"))
    executor_cores = int(conf.get("spark.executor.cores", str(total)))
    return total, task_cpus, executor_cores


def scoring_tasks(spark: SparkSession, spec: ScoringPass) -> DataFrame:
    """Lazy: one Spark task per work item; each returns (item, model_version, file, rows, …)."""
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
    explain: ReasonCodes | None = None,
    on_staged: Callable[[list[Path], dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Score the partition's files with every model in one pass; commit one partition per model.

    Each final partition is replaced atomically (staged, reported files only, `_SUCCESS`,
    rename); on any error none of them changes. With `explain`, the champion's reason codes are
    computed in the same tasks and committed to their own partition, tied to the scores by
    checksum (committed just before them).
    `on_staged` sees the staged partitions (scores and reasons) and the pass's outcome just
    before the commit (the score stage writes its manifests there).
    """
    total_cores, task_cpus, executor_cores = cluster_shape(spark)
    planned = plan_work(files, task_count(rows_in, total_cores // task_cpus, MAX_TASK_ROWS))
    threads = threads_per_task(total_cores, len(planned), task_cpus, executor_cores)
    key_type = key_type_of(files, entity_key)
    with ExitStack() as stack:
        stagings = {v: stack.enter_context(lake.staged_partition(final)) for v, final in finals.items()}
        reasons = stack.enter_context(lake.staged_partition(explain.partition)) if explain else None
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
            explain=explain.spec if explain else None,
        )
        reports = collect_reports(scoring_tasks(spark, spec)) if planned else []
        commit_task_outputs(reports, planned, stagings)
        if not planned:
            write_empty(stagings, entity_key, key_type, refs[0].classes)
        rows = {v: partition_rows(staging) for v, staging in stagings.items()}
        done: dict[str, Any] = {"rows": rows, "reports": reports, "tasks": len(planned)}
        done["threads_per_task"] = threads
        if explain and reasons is not None:
            reason_rows = commit_reasons(
                reports, len(planned), reasons, refs[0], explain.spec, first, entity_key, key_type
            )
            top_k = explain.spec.top_k
            done["reasons"] = {"rows": reason_rows, "path": str(explain.partition), "top_k": top_k}
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
