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
