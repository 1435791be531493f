"""Batch inference with one verified model per Python worker, CPU or GPU.

The score stage does not stream rows from the JVM to Python. The driver plans work items
(runs of Parquet row groups of the features partition, balanced by rows), Spark runs one
task per item, and each task reads its row groups with pyarrow, fills one float32 matrix
per batch straight from the column buffers, scores it with every model of the pass
(champion, and the challenger when shadow scoring), and writes one Parquet file per model
under a task-attempt-unique name. Tasks return only the names of the files they wrote;
the driver commits those and nothing else (`scoring_driver`).

Models are loaded once per Python worker process (cached by path, SHA-256 and device),
and the artifact's SHA-256 is verified before first use. `inference.device: auto` is
resolved inside the worker: Spark's task GPU resources first, then visible CUDA devices.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from batchscore.models.devices import resolve_device, stage_and_score_gpu
from batchscore.models.inference import (
    GPU_BATCH_ROWS,
    ModelRef,
    OnnxScorer,
    Scorer,
    ScoringError,
    XGBoostScorer,
    feature_matrix,
)
from batchscore.models.reasons import ExplainSpec, ReasonsWriter
from batchscore.storage.lake import file_sha256

log = logging.getLogger(__name__)

SCORE_COLUMN = "score"
TASK_RESULT_DDL = (
    "item long, model_version long, file string, rows long, pid long, loads long, device string, "
    "reasons_file string, attribution string"
)


_SCORERS: dict[tuple[str, str, str], Scorer] = {}
LOAD_COUNT = {"loads": 0}


SHIPPED = "sparkfiles:"


def ship_model(spark: Any, ref: ModelRef, ship_dir: Path) -> ModelRef:
    """Send the artifact to every executor with `SparkContext.addFile` (cluster mode).

    The copy's name carries the model, version and checksum, so runs of different versions in
    one Spark application never clash; executors resolve it with `SparkFiles.get`.
    """
    source = Path(ref.artifact_path)
    name = f"{ref.model}-v{ref.version}-{ref.sha256[:16]}{source.suffix}"
    shipped = ship_dir / name
    if not shipped.exists():
        ship_dir.mkdir(parents=True, exist_ok=True)
        tmp = ship_dir / f".{name}.{os.getpid()}.tmp"
        shutil.copyfile(source, tmp)
        os.replace(tmp, shipped)
    spark.sparkContext.addFile(str(shipped))
    return replace(ref, artifact_path=SHIPPED + name)


def artifact_file(ref: ModelRef) -> str:
    """The artifact's local path: the registry's file, or an executor's copy of a shipped one."""
    if ref.artifact_path.startswith(SHIPPED):
        from pyspark import SparkFiles

        return str(SparkFiles.get(ref.artifact_path.removeprefix(SHIPPED)))
    return ref.artifact_path


def load_scorer(ref: ModelRef, threads: int = 0) -> Scorer:
    """The cached scorer for `ref` in this process; verifies the artifact's SHA-256 the first time."""
    path = artifact_file(ref)
    device = resolve_device(ref.device, ref.backend, path)
    key = (ref.artifact_path, ref.sha256, device)
    scorer = _SCORERS.get(key)
    if scorer is None:
        actual = file_sha256(Path(path))
        if actual != ref.sha256:
            raise ScoringError(
                f"{ref.model} v{ref.version}: {path} fails its checksum "
                f"(expected {ref.sha256[:12]}…, found {actual[:12]}…); refusing to score"
            )
        scorer = (
            XGBoostScorer(path, device, ref.task)
            if ref.backend == "xgboost"
            else OnnxScorer(path, device, threads, ref.task)
        )
        _SCORERS[key] = scorer
        LOAD_COUNT["loads"] += 1
        log.info(
            "loaded %s v%s (%s on %s) in pid %s", ref.model, ref.version, ref.backend, device, os.getpid()
        )
    return scorer


INT_KEY = pa.int64()


def output_schema(entity_key: str, key_type: pa.DataType = INT_KEY, classes: Sequence[str] = ()) -> pa.Schema:
    """The scores partition's columns; the scores suite and `publish` read exactly these.

    The key keeps the features partition's type: a 64-bit integer or a string. A multiclass
    model adds the top class (`predicted_class`) and one `p_<class>` probability per class;
    its `score` is the top class's probability.
    """
    fields = [
        (entity_key, key_type),
        (SCORE_COLUMN, pa.float64()),
        ("model_version", pa.int64()),
        ("run_date", pa.date32()),
    ]
    if classes:
        fields += [("predicted_class", pa.string())] + [(f"p_{c}", pa.float64()) for c in classes]
    return pa.schema(fields)


def scores_batch(
    keys: pa.Array,
    scores: np.ndarray,
    version: int,
    run_date: date,
    entity_key: str,
    classes: Sequence[str] = (),
) -> pa.RecordBatch:
    """One batch of the scores partition; `scores` is (rows,) or, multiclass, (rows, classes)."""
    rows = len(keys)
    key_type = (
        pa.string() if pa.types.is_string(keys.type) or pa.types.is_large_string(keys.type) else pa.int64()
    )
    top = scores.max(axis=1) if scores.ndim == 2 else scores
    columns = [
        keys.cast(key_type),
        pa.array(top, type=pa.float64()),
        pa.array(np.full(rows, version, dtype=np.int64)),
        pa.array(np.full(rows, np.datetime64(run_date, "D"))),
    ]
    if classes:
        if scores.ndim != 2 or scores.shape[1] != len(classes):
            raise ScoringError(f"model v{version} gives {scores.shape} outputs for {len(classes)} classes")
        names = pa.array(list(classes), type=pa.string())
        columns.append(names.take(pa.array(np.argmax(scores, axis=1))))
        columns += [pa.array(scores[:, j], type=pa.float64()) for j in range(len(classes))]
    return pa.RecordBatch.from_arrays(columns, schema=output_schema(entity_key, key_type, classes))


def score_batches(
    batches: Iterable[pa.RecordBatch], ref: ModelRef, entity_key: str, run_date: date, threads: int = 0
) -> Iterator[pa.RecordBatch]:
    """Score Arrow batches in this process: entity key, score in [0, 1], model version, run date."""
    scorer = load_scorer(ref, threads)
    threads = threads or os.cpu_count() or 1
    for batch in batches:
        if batch.num_rows == 0:
            continue
        scores = scorer.predict(feature_matrix(batch, ref.feature_names), threads)
        keys = _as_array(batch.column(entity_key))
        yield scores_batch(keys, scores, ref.version, run_date, entity_key, ref.classes)


def _as_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


# ---------------------------------------------------------------------------------------
# Work planning (driver) and the per-task scoring pass (Python worker)


@dataclass(frozen=True)
class WorkItem:
    """One Spark task's input: row groups of the features partition, in file order."""

    index: int
    row_groups: tuple[tuple[str, int], ...]
    rows: int


def plan_work(files: Sequence[Path], tasks: int) -> list[WorkItem]:
    """Split the partition's row groups into at most `tasks` contiguous runs of about equal rows.

    Reads only the Parquet footers. A row group goes to the run its middle row falls in,
    so runs are balanced to within one row group.
    """
    import pyarrow.parquet as pq

    groups: list[tuple[str, int, int]] = []
    for file in files:
        metadata = pq.read_metadata(file)
        groups += [(str(file), i, metadata.row_group(i).num_rows) for i in range(metadata.num_row_groups)]
    total = sum(rows for _, _, rows in groups)
    if total == 0 or tasks < 1:
        return []
    buckets: dict[int, list[tuple[str, int, int]]] = {}
    seen = 0
    for path, index, rows in groups:
        if rows == 0:
            continue
        bucket = min(tasks - 1, int((seen + rows / 2) * tasks / total))
        buckets.setdefault(bucket, []).append((path, index, rows))
        seen += rows
    return [
        WorkItem(n, tuple((p, i) for p, i, _ in members), sum(r for _, _, r in members))
        for n, (_, members) in enumerate(sorted(buckets.items()))
    ]


def task_count(total_rows: int, slots: int, max_task_rows: int) -> int:
    """Enough tasks to fill every slot, in whole waves, each at most `max_task_rows`."""
    waves = max(1, math.ceil(total_rows / max(1, slots * max_task_rows)))
    return max(1, slots) * waves


def threads_per_task(total_cores: int, items: int, task_cpus: int, executor_cores: int) -> int:
    """Cores each task's model may use: the task's share, more when fewer tasks than cores run."""
    concurrent = max(1, min(items, total_cores // max(1, task_cpus)))
    return max(task_cpus, min(executor_cores, total_cores // concurrent))


@dataclass(frozen=True)
class ScoringPass:
    """What every task of one score stage needs: the plan, the models, where outputs go."""

    items: tuple[WorkItem, ...]
    refs: tuple[ModelRef, ...]
    entity_key: str
    run_date: date
    attempts_dir: str
    batch_rows: int
    threads: int
    key_type: pa.DataType = INT_KEY
    explain: ExplainSpec | None = None
    """When set, the champion's reason codes are written beside its scores (`reasons`)."""


def attempt_file(attempts_dir: str, version: int, item: int, attempt: str) -> Path:
    """Where one task attempt writes one model's scores: unique per attempt, outside the partition."""
    return Path(attempts_dir) / f"model_version={version}" / f"item-{item:05d}.attempt-{attempt}.parquet"


def run_work_item(spec: ScoringPass, item: WorkItem, attempt: str) -> list[dict[str, Any]]:
    """Read the item's row groups once, score them with every model, write one file per model."""
    import pyarrow.parquet as pq

    scorers = [load_scorer(ref, spec.threads) for ref in spec.refs]
    columns = [spec.entity_key, *spec.refs[0].feature_names]
    names = spec.refs[0].feature_names
    outputs = [attempt_file(spec.attempts_dir, ref.version, item.index, attempt) for ref in spec.refs]
    writers: list[pq.ParquetWriter] = []
    explained: ReasonsWriter | None = None
    rows = 0
    try:
        explained = _reasons_writer(spec, item, attempt)
        for path in outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            schema = output_schema(spec.entity_key, spec.key_type, spec.refs[0].classes)
            writers.append(pq.ParquetWriter(path, schema, compression="snappy"))
        # A GPU wants large batches (kernel launches and copies amortised over many rows).
        batch_rows = max(spec.batch_rows, GPU_BATCH_ROWS) if _on_gpu(scorers) else spec.batch_rows
        batches = (
            batch
            for source, row_groups in _runs_by_file(item.row_groups)
            for batch in pq.ParquetFile(source).iter_batches(
                batch_size=batch_rows, row_groups=row_groups, columns=columns, use_threads=spec.threads > 1
            )
        )
        for batch, scores in _score_each(batches, scorers, names, spec.threads, _orders(spec.refs)):
            keys = _as_array(batch.column(spec.entity_key))
            for ref, model_scores, writer in zip(spec.refs, scores, writers, strict=True):
                writer.write_batch(
                    scores_batch(keys, model_scores, ref.version, spec.run_date, spec.entity_key, ref.classes)
                )
            if explained is not None:
                matrix = feature_matrix(batch, names)
                explained.write(scorers[0], keys, matrix, scores[0], spec.threads, spec.run_date)
            rows += batch.num_rows
    finally:
        for writer in writers:
            writer.close()
        if explained is not None:
            explained.close()
    if rows != item.rows:
        raise ScoringError(f"work item {item.index} read {rows} rows, its footers promised {item.rows}")
    return [
        {
            "item": item.index,
            "model_version": ref.version,
            "file": str(path),
            "rows": rows,
            "pid": os.getpid(),
            "loads": LOAD_COUNT["loads"],
            "device": scorer.device,
            **(
                explained.report()
                if explained is not None and n == 0
                else {"reasons_file": "", "attribution": ""}
            ),
        }
        for n, (ref, scorer, path) in enumerate(zip(spec.refs, scorers, outputs, strict=True))
    ]


def _reasons_writer(spec: ScoringPass, item: WorkItem, attempt: str) -> ReasonsWriter | None:
    """The champion's reasons file of this attempt (beside its scores attempts), when explaining."""
    if spec.explain is None:
        return None
    path = attempt_file(spec.attempts_dir, spec.refs[0].version, item.index, attempt)
    path = path.parent.with_name("reasons") / path.name
    return ReasonsWriter(path, spec.explain, spec.refs[0], spec.entity_key, spec.key_type)


def _on_gpu(scorers: Sequence[Scorer]) -> bool:
    return all(isinstance(s, XGBoostScorer) and s.device.startswith("cuda") for s in scorers)


def _orders(refs: Sequence[ModelRef]) -> list[list[int] | None]:
    """Per model, the column permutation from the first model's feature order to its own
    (None when identical): an imported model may take the same features in another order."""
    names = list(refs[0].feature_names)
    return [
        None if ref.feature_names == refs[0].feature_names else [names.index(n) for n in ref.feature_names]
        for ref in refs
    ]


def _score_each(
    batches: Iterator[pa.RecordBatch],
    scorers: Sequence[Scorer],
    names: Sequence[str],
    threads: int,
    orders: Sequence[list[int] | None],
) -> Iterator[tuple[pa.RecordBatch | pa.Table, list[np.ndarray]]]:
    """(batch, scores per model): XGBoost on a GPU gets device-staged batches, else one host matrix."""
    if _on_gpu(scorers) and not any(orders):
        boosters = [s.booster for s in scorers if isinstance(s, XGBoostScorer)]
        device_id = int(scorers[0].device.partition(":")[2] or 0)
        yield from stage_and_score_gpu(batches, boosters, names, device_id=device_id)
        return
    buffer: np.ndarray | None = None
    for batch in batches:
        if buffer is None or buffer.shape[0] < batch.num_rows:
            buffer = np.empty((batch.num_rows, len(names)), dtype=np.float32)
        matrix = feature_matrix(batch, names, out=buffer)
        yield (
            batch,
            [
                scorer.predict(matrix if order is None else np.ascontiguousarray(matrix[:, order]), threads)
                for scorer, order in zip(scorers, orders, strict=True)
            ],
        )


def _runs_by_file(row_groups: Sequence[tuple[str, int]]) -> list[tuple[str, list[int]]]:
    runs: list[tuple[str, list[int]]] = []
    for path, index in row_groups:
        if runs and runs[-1][0] == path:
            runs[-1][1].append(index)
        else:
            runs.append((path, [index]))
    return runs


def score_work_items(batches: Iterator[pa.RecordBatch], spec: ScoringPass) -> Iterator[pa.RecordBatch]:
    """What each Spark task runs (`mapInArrow` over item ids): score its items, report its files."""
    from pyspark import TaskContext

    context = TaskContext.get()
    attempt = f"{context.taskAttemptId()}" if context is not None else f"local-{os.getpid()}"
    for batch in batches:
        for index in batch.column(0).to_pylist():
            reports = run_work_item(spec, spec.items[index], attempt)
            yield pa.RecordBatch.from_pylist(reports, schema=_task_result_schema())


def _task_result_schema() -> pa.Schema:
    return pa.schema(
        [
            ("item", pa.int64()),
            ("model_version", pa.int64()),
            ("file", pa.string()),
            ("rows", pa.int64()),
            ("pid", pa.int64()),
            ("loads", pa.int64()),
            ("device", pa.string()),
            ("reasons_file", pa.string()),
            ("attribution", pa.string()),
        ]
    )
