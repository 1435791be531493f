"""The models themselves in one process: a verified artifact's reference, the XGBoost and
ONNX Runtime scorers, and the float32 matrix they score, filled straight from Arrow buffers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from batchscore.errors import PermanentFailure

GPU_BATCH_ROWS = 1 << 20


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
    task: str = "binary"
    classes: tuple[str, ...] = ()


class Scorer(Protocol):
    device: str

    def predict(self, matrix: np.ndarray, threads: int) -> np.ndarray: ...


class XGBoostScorer:
    """XGBoost native booster (UBJ/JSON); `inplace_predict` avoids building a DMatrix."""

    def __init__(self, path: str, device: str, task: str = "binary"):
        import xgboost as xgb

        self.device = device
        self.task = task
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
        return task_scores(scores, self.task)


def onnx_output(outputs: Sequence[Any], task: str) -> str:
    """The output to score with: `probabilities` when there is one, else the first float tensor.

    Classifiers converted with a ZipMap (a list of dicts per row) have no float tensor of
    probabilities; they are refused with how to convert them instead.
    """
    tensors = [o.name for o in outputs if str(o.type).startswith(("tensor(float", "tensor(double"))]
    if task != "regression" and "probabilities" in tensors:
        return "probabilities"
    if not tensors:
        raise ScoringError(
            "the ONNX model has no float tensor output (a ZipMap of probabilities?); "
            "convert it with options={'zipmap': False}"
        )
    return tensors[-1] if task != "regression" else tensors[0]


def task_scores(values: np.ndarray, task: str) -> np.ndarray:
    """One score per row from a model's raw output: the positive class's probability (binary),
    the value (regression), or the matrix of class probabilities (multiclass)."""
    values = np.asarray(values)
    if task == "multiclass":
        return values.astype(np.float64)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    elif values.ndim == 2 and task == "binary" and values.shape[1] == 2:
        values = values[:, 1]
    if values.ndim != 1:
        raise ScoringError(
            f"a {task} model must give one value per row, got an output of shape {values.shape}"
        )
    return values.astype(np.float64)


class OnnxScorer:
    """ONNX Runtime session over one float32 input tensor [rows, features].

    On `cuda` the session uses ORT's CUDA execution provider. ORT implements the
    TreeEnsemble operators for the CPU only: a tree model converted to ONNX runs on the CPU
    even with the CUDA provider, so GPU scoring of trees goes through XGBoost's predictor.
    """

    def __init__(self, path: str, device: str, threads: int = 0, task: str = "binary"):
        import onnxruntime as ort

        self.device = device
        self.task = task
        providers: list[Any] = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            device_id = int(device.partition(":")[2] or 0)
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device_id}))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = onnx_output(self.session.get_outputs(), task)

    def predict(self, matrix: np.ndarray, threads: int) -> np.ndarray:
        (values,) = self.session.run([self.output_name], {self.input_name: matrix})
        return task_scores(values, self.task)


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
