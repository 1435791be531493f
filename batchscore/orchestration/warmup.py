"""Warm Spark up while a run's first tasks work: the session, a first job, scoring workers.

A run in one process (`batchscore run`, `batchscore backfill`) pays the Spark JVM start, its
first job's class loading and code generation, and each Python worker's imports once. Started
before the DagRun, that cost overlaps the metadata-database sync, `resolve_model` and
`validate_raw` (which do not use Spark) instead of adding to `build_features` and `score`.
Then it imports Evidently (about 3.5 s of Python), which only `drift_report` needs, while
`build_features` and `score` mostly wait on the JVM. Nothing here reads the run's data or
changes a result: a failed warm-up is logged and the stages start Spark (or import) themselves,
as they always could.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from batchscore.compute.spark import get_spark, is_cluster

if TYPE_CHECKING:
    from batchscore.settings import PlatformSettings

log = logging.getLogger(__name__)
# What drift_report imports (batchscore/quality/drift_report.py), slowest first.
PRELOADED = (
    "evidently",
    "evidently.presets",
    "evidently.metrics.column_statistics",
    "evidently.legacy.utils",
)
_started: threading.Thread | None = None
_lock = threading.Lock()


def start(platform: PlatformSettings) -> threading.Thread | None:
    """Warm up in a background thread, once per process; None on a cluster master (the session
    there holds executors, which a run should not take before it needs them) or with
    `BATCHSCORE_SPARK_WARMUP=0`."""
    global _started
    if is_cluster(platform.spark_master) or not platform.spark_warmup:
        return None
    with _lock:
        if _started is None:
            _started = threading.Thread(target=warm, args=(platform,), name="spark-warmup", daemon=True)
            _started.start()
        return _started


def warm(platform: PlatformSettings) -> None:
    """Start the session, write and read a small Parquet file, aggregate it, and have each core's
    Python worker import the scoring libraries (workers are reused by the stages' jobs); then
    import what drift_report needs."""
    try:
        spark = get_spark(platform)
        cores = spark.sparkContext.defaultParallelism
        folder = Path(tempfile.mkdtemp(prefix="warmup-", dir=platform.home / "var"))
        try:
            frame = spark.range(0, 20_000, 1, cores).selectExpr(
                "id", "CAST(id % 97 AS DOUBLE) / 7 AS x", "CAST(id % 13 AS STRING) AS s"
            )
            frame.write.mode("overwrite").parquet(str(folder / "t"))
            back = spark.read.parquet(str(folder / "t"))
            back.groupBy("s").agg({"x": "avg", "id": "count"}).collect()
            back.repartition(cores).mapInArrow(import_scoring, "id BIGINT").collect()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    except Exception as exc:  # a warm-up must never fail a run: the stages start Spark themselves
        log.warning("Spark warm-up failed (the stages will start Spark themselves): %s", exc)
    preload()


def preload(modules: tuple[str, ...] = PRELOADED) -> None:
    """Import what a later stage imports; a failure is logged and the stage imports it itself."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            log.warning("warm-up could not import %s (drift_report will): %s", name, exc)
            return


def import_scoring(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """In a Python worker: import what scoring imports, return no rows."""
    import xgboost  # noqa: F401

    import batchscore.models.scoring  # noqa: F401

    for _ in batches:
        pass
    yield pa.RecordBatch.from_pylist([], schema=pa.schema([("id", pa.int64())]))
