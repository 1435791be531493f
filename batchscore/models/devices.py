"""Device choice (Spark's task GPUs, visible CUDA devices, what each backend's build supports)
and GPU scoring of XGBoost on device-resident batches staged through pinned host buffers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from batchscore.models.inference import GPU_BATCH_ROWS, ScoringError, feature_matrix

log = logging.getLogger(__name__)


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
