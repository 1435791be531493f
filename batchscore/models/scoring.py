"""Batch inference with one verified model per Python worker, CPU or GPU.

The score stage does not stream rows from the JVM to Python. The driver plans work items
(runs of Parquet row groups of the features partition, balanced by rows), Spark runs one
task per item, and each task reads its row groups with pyarrow, fills one float32 matrix
per batch straight from the column buffers, scores it with every model of the pass
(champion, and the challenger when shadow scoring), and writes one Parquet file per model
under a task-attempt-unique name. Tasks return only the names of the files they wrote;
the driver commits those and nothing else (`jobs.score`).

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
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from batchscore.errors import PermanentFailure
from batchscore.storage.lake import file_sha256

log = logging.getLogger(__name__)

SCORE_COLUMN = "score"
GPU_BATCH_ROWS = 1 << 20
TASK_RESULT_DDL = "item long, model_version long, file string, rows long, pid long, loads long, device string"


class ScoringError(PermanentFailure, RuntimeError):
    """The model cannot score these features (wrong feature set, bad artifact, no device)."""


@dataclass(frozen=True)
class ModelRef:
    """Everything an executor needs to load and check a model; small and picklable.

    `device` is what the pipeline asked for (`auto`, `cpu`, `cuda`); each worker resolves
    it against the hardware it runs on.
    """

    model: str
    version: int
    backend: str
    artifact_path: str
    sha256: str
    feature_names: tuple[str, ...]
    device: str = "cpu"


class Scorer(Protocol):
    device: str

    def predict(self, matrix: np.ndarray, threads: int) -> np.ndarray: ...


class XGBoostScorer:
    """XGBoost native booster (UBJ/JSON); `inplace_predict` avoids building a DMatrix."""

    def __init__(self, path: str, device: str):
        import xgboost as xgb

        self.device = device
        self.booster = xgb.Booster()
        self.booster.load_model(path)
        self.booster.set_param({"device": device})
        self._threads = 0

    def predict(self, matrix: np.ndarray, threads: int) -> np.ndarray:
        if threads != self._threads:
            self.booster.set_param({"nthread": threads})
            self._threads = threads
        scores = self.booster.inplace_predict(matrix, validate_features=False)
        if not isinstance(scores, np.ndarray):  # a cupy array when the input was on the device
            scores = scores.get()
        return np.asarray(scores, dtype=np.float64)


class OnnxScorer:
    """ONNX Runtime session; takes the positive-class column of the probabilities output.

    On `cuda` the session uses ORT's CUDA execution provider. ORT implements the
    TreeEnsemble operators for the CPU only: a tree model converted to ONNX runs on the CPU
    even with the CUDA provider, so GPU scoring of trees goes through XGBoost's predictor.
    """

    def __init__(self, path: str, device: str, threads: int = 0):
        import onnxruntime as ort

        self.device = device
        providers: list[Any] = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            device_id = int(device.partition(":")[2] or 0)
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device_id}))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        self.output_name = "probabilities" if "probabilities" in outputs else outputs[-1]

    def predict(self, matrix: np.ndarray, threads: int) -> np.ndarray:
        (probabilities,) = self.session.run([self.output_name], {self.input_name: matrix})
        probabilities = np.asarray(probabilities)
        if probabilities.ndim == 2:
            probabilities = probabilities[:, -1]
        return probabilities.astype(np.float64)


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
            XGBoostScorer(path, device) if ref.backend == "xgboost" else OnnxScorer(path, device, threads)
        )
        _SCORERS[key] = scorer
        LOAD_COUNT["loads"] += 1
        log.info(
            "loaded %s v%s (%s on %s) in pid %s", ref.model, ref.version, ref.backend, device, os.getpid()
        )
    return scorer


def feature_matrix(
    batch: pa.RecordBatch | pa.Table, names: Sequence[str], out: np.ndarray | None = None
) -> np.ndarray:
    """A C-ordered float32 matrix of the named columns, filled column by column from the
    Arrow buffers (one copy, no intermediate arrays); nulls become NaN (XGBoost's missing).

    `out`, when given, is filled in place (for instance a pinned host buffer for the GPU).
    """
    rows = batch.num_rows
    matrix = np.empty((rows, len(names)), dtype=np.float32) if out is None else out[:rows]
    for j, name in enumerate(names):
        column = batch.column(name)
        if column.null_count:
            column = column.fill_null(float("nan"))
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        start = 0
        for chunk in chunks:
            end = start + len(chunk)
            matrix[start:end, j] = chunk.to_numpy(zero_copy_only=False)
            start = end
    return matrix


def output_schema(entity_key: str) -> pa.Schema:
    """The scores partition's columns; the scores suite and `publish` read exactly these."""
    return pa.schema(
        [
            (entity_key, pa.int64()),
            (SCORE_COLUMN, pa.float64()),
            ("model_version", pa.int64()),
            ("run_date", pa.date32()),
        ]
    )


def scores_batch(
    keys: pa.Array, scores: np.ndarray, version: int, run_date: date, entity_key: str
) -> pa.RecordBatch:
    rows = len(keys)
    return pa.RecordBatch.from_arrays(
        [
            keys.cast(pa.int64()),
            pa.array(scores, type=pa.float64()),
            pa.array(np.full(rows, version, dtype=np.int64)),
            pa.array(np.full(rows, np.datetime64(run_date, "D"))),
        ],
        schema=output_schema(entity_key),
    )


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
        yield scores_batch(_as_array(batch.column(entity_key)), scores, ref.version, run_date, entity_key)


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
    rows = 0
    try:
        for path in outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            writers.append(pq.ParquetWriter(path, output_schema(spec.entity_key), compression="snappy"))
        # A GPU wants large batches (kernel launches and copies amortised over many rows).
        batch_rows = max(spec.batch_rows, GPU_BATCH_ROWS) if _on_gpu(scorers) else spec.batch_rows
        batches = (
            batch
            for source, row_groups in _runs_by_file(item.row_groups)
            for batch in pq.ParquetFile(source).iter_batches(
                batch_size=batch_rows, row_groups=row_groups, columns=columns, use_threads=spec.threads > 1
            )
        )
        for batch, scores in _score_each(batches, scorers, names, spec.threads):
            keys = _as_array(batch.column(spec.entity_key))
            for ref, model_scores, writer in zip(spec.refs, scores, writers, strict=True):
                writer.write_batch(
                    scores_batch(keys, model_scores, ref.version, spec.run_date, spec.entity_key)
                )
            rows += batch.num_rows
    finally:
        for writer in writers:
            writer.close()
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
        }
        for ref, scorer, path in zip(spec.refs, scorers, outputs, strict=True)
    ]


def _on_gpu(scorers: Sequence[Scorer]) -> bool:
    return all(isinstance(s, XGBoostScorer) and s.device.startswith("cuda") for s in scorers)


def _score_each(
    batches: Iterator[pa.RecordBatch], scorers: Sequence[Scorer], names: Sequence[str], threads: int
) -> Iterator[tuple[pa.RecordBatch | pa.Table, list[np.ndarray]]]:
    """(batch, scores per model): XGBoost on a GPU gets device-staged batches, else one host matrix."""
    if _on_gpu(scorers):
        boosters = [s.booster for s in scorers if isinstance(s, XGBoostScorer)]
        device_id = int(scorers[0].device.partition(":")[2] or 0)
        yield from stage_and_score_gpu(batches, boosters, names, device_id=device_id)
        return
    buffer: np.ndarray | None = None
    for batch in batches:
        if buffer is None or buffer.shape[0] < batch.num_rows:
            buffer = np.empty((batch.num_rows, len(names)), dtype=np.float32)
        matrix = feature_matrix(batch, names, out=buffer)
        yield batch, [scorer.predict(matrix, threads) for scorer in scorers]


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
        ]
    )


def with_device(refs: Iterable[ModelRef], device: str) -> tuple[ModelRef, ...]:
    return tuple(replace(ref, device=device) for ref in refs)


# ---------------------------------------------------------------------------------------
# Device choice


def spark_task_gpus() -> list[str]:
    """GPU addresses Spark assigned to the running task (`spark.task.resource.gpu.amount`)."""
    try:
        from pyspark import TaskContext
    except ImportError:
        return []
    context = TaskContext.get()
    if context is None:
        return []
    gpu = context.resources().get("gpu")
    return list(gpu.addresses) if gpu is not None else []


def visible_cuda_devices() -> list[str]:
    """CUDA devices this process may use: CUDA_VISIBLE_DEVICES's ordinals, else /dev/nvidiaN."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = [v.strip() for v in visible.split(",") if v.strip() and v.strip() != "-1"]
        return [str(n) for n in range(len(entries))]
    return sorted(
        (p.name.removeprefix("nvidia") for p in Path("/dev").glob("nvidia[0-9]*")), key=lambda s: int(s)
    )


def backend_gpu_support(backend: str) -> tuple[bool, str]:
    """Whether the backend's installed build can run on a CUDA device, and why not."""
    if backend == "xgboost":
        import xgboost as xgb

        if not xgb.build_info().get("USE_CUDA", False):
            return False, "this xgboost build has no CUDA support"
        return True, "xgboost built with CUDA"
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False, "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"
    return True, "onnxruntime CUDAExecutionProvider available"


def onnx_is_tree_ensemble(path: str) -> bool:
    """Whether an ONNX graph holds TreeEnsemble operators (which ORT runs on the CPU only)."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    return any(node.op_type.startswith("TreeEnsemble") for node in graph.node)


def gpu_available(backend: str = "xgboost") -> bool:
    """Whether this process sees a GPU that the backend can use."""
    return bool(spark_task_gpus() or visible_cuda_devices()) and backend_gpu_support(backend)[0]


def resolve_device(requested: str, backend: str, artifact_path: str | None = None) -> str:
    """`cpu`, or `cuda:<ordinal>` of the GPU this worker should use.

    `auto` takes the GPU Spark assigned to the task, else the first visible CUDA device,
    when the backend can use it; otherwise the CPU, logging why. `cuda` without a usable
    GPU raises a ScoringError that says what is missing.
    """
    if requested == "cpu":
        return "cpu"
    task_gpus = spark_task_gpus()
    devices = task_gpus or visible_cuda_devices()
    supported, why = backend_gpu_support(backend)
    if requested.startswith("cuda:"):
        devices = [requested.partition(":")[2]]
    if not devices or not supported:
        reason = "no GPU assigned to this Spark task and no CUDA device visible" if not devices else why
        if requested == "auto":
            log.info("inference device auto -> cpu (%s)", reason)
            return "cpu"
        raise ScoringError(
            f"inference.device is '{requested}' but there is no usable GPU for the {backend} backend: {reason}"
        )
    device = f"cuda:{devices[0]}"
    if backend == "onnx" and artifact_path and onnx_is_tree_ensemble(artifact_path):
        if requested == "auto":
            log.info(
                "inference device auto -> cpu: ONNX Runtime runs TreeEnsemble operators on the CPU "
                "only; use backend xgboost for GPU scoring of trees"
            )
            return "cpu"
        log.warning("ONNX TreeEnsemble operators run on the CPU even with the CUDA execution provider")
    source = "Spark task resource" if task_gpus else "visible CUDA device"
    if requested == "auto":
        log.info("inference device auto -> %s (%s, %s)", device, source, why)
    return device


def choose_device(requested: str, backend: str, artifact_path: str | None = None) -> str:
    """`cpu` or `cuda` for this process; `cuda` without a usable GPU fails clearly."""
    return resolve_device(requested, backend, artifact_path).partition(":")[0]


# ---------------------------------------------------------------------------------------
# GPU: XGBoost on device-resident batches


def score_arrow_batches_gpu(
    batches: Iterable[pa.RecordBatch | pa.Table],
    booster: Any,
    feature_names: Sequence[str],
    *,
    max_rows: int = GPU_BATCH_ROWS,
    depth: int = 2,
    device_id: int = 0,
) -> Iterator[np.ndarray]:
    """Score Arrow batches with an XGBoost booster on a CUDA device; yields host float32 scores.

    Handing numpy host arrays to a CUDA booster makes XGBoost copy each one to the device
    synchronously (measured: 3.5M rows/s on an H100, against 140M rows/s for device-resident
    input). Here each batch is written straight from its Arrow columns into a pinned
    (page-locked) host buffer and copied to a device buffer asynchronously on its own CUDA
    stream, so one batch's copy is in flight while the previous one is predicted (`depth`
    buffer slots rotate). Batches longer than `max_rows` are split.
    """
    staged = stage_and_score_gpu(
        batches, [booster], feature_names, max_rows=max_rows, depth=depth, device_id=device_id
    )
    for _, (scores,) in staged:
        yield scores


def stage_and_score_gpu(
    batches: Iterable[pa.RecordBatch | pa.Table],
    boosters: Sequence[Any],
    feature_names: Sequence[str],
    *,
    max_rows: int = GPU_BATCH_ROWS,
    depth: int = 2,
    device_id: int = 0,
) -> Iterator[tuple[pa.RecordBatch | pa.Table, list[np.ndarray]]]:
    """Stage each batch on the device once and score it with every booster (champion, challenger).

    Yields (batch, scores per booster), in input order. Pinned host buffer -> async copy on
    the slot's stream -> predict when the copy is done; the copy of batch i+1 is issued
    before batch i is predicted.
    """
    import cupy as cp
    import cupyx

    with cp.cuda.Device(device_id) as gpu:
        for booster in boosters:
            booster.set_param({"device": f"cuda:{device_id}"})
        width = len(feature_names)
        pinned = [cupyx.empty_pinned((max_rows, width), dtype=np.float32) for _ in range(depth)]
        on_device = [cp.empty((max_rows, width), dtype=cp.float32) for _ in range(depth)]
        streams = [cp.cuda.Stream(non_blocking=True) for _ in range(depth)]
        in_flight: list[tuple[int, pa.RecordBatch | pa.Table]] = []  # copies issued, oldest first

        def finish() -> tuple[pa.RecordBatch | pa.Table, list[np.ndarray]]:
            slot, batch = in_flight.pop(0)
            streams[slot].synchronize()  # this slot's host-to-device copy is done
            matrix = on_device[slot][: batch.num_rows]
            predictions = [b.inplace_predict(matrix, validate_features=False) for b in boosters]
            gpu.synchronize()  # predictions done: the slot's buffers may be reused
            return batch, [np.asarray(cp.asnumpy(p), dtype=np.float32) for p in predictions]

        slot = 0
        for batch in _split(batches, max_rows):
            if len(in_flight) == depth:
                yield finish()
            rows = batch.num_rows
            feature_matrix(batch, feature_names, out=pinned[slot])
            on_device[slot][:rows].set(pinned[slot][:rows], stream=streams[slot])
            in_flight.append((slot, batch))
            slot = (slot + 1) % depth
        while in_flight:
            yield finish()


def _split(
    batches: Iterable[pa.RecordBatch | pa.Table], max_rows: int
) -> Iterator[pa.RecordBatch | pa.Table]:
    for batch in batches:
        for start in range(0, batch.num_rows, max_rows):
            yield batch.slice(start, max_rows)
