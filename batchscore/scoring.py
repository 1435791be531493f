"""Batch inference on Arrow record batches, with one verified model per Python worker.

`score_batches` is what Spark's `mapInArrow` runs on each executor: the model is loaded
once per worker process (cached by path and SHA-256, checksum verified before first use),
and each Arrow batch is turned into one float32 matrix and scored in a single call.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from batchscore.errors import PermanentFailure
from batchscore.lake import file_sha256

log = logging.getLogger(__name__)

SCORE_COLUMN = "score"


class ScoringError(PermanentFailure, RuntimeError):
    """The model cannot score these features (wrong feature set, bad artifact, no device)."""


@dataclass(frozen=True)
class ModelRef:
    """Everything an executor needs to load and check a model; small and picklable."""

    model: str
    version: int
    backend: str
    artifact_path: str
    sha256: str
    feature_names: tuple[str, ...]
    device: str = "cpu"


class Scorer(Protocol):
    def predict(self, matrix: np.ndarray) -> np.ndarray: ...


class XGBoostScorer:
    """XGBoost native booster (UBJ/JSON); `inplace_predict` avoids building a DMatrix."""

    def __init__(self, path: str, device: str):
        import xgboost as xgb

        self.booster = xgb.Booster()
        self.booster.load_model(path)
        self.booster.set_param({"nthread": os.cpu_count() or 1, "device": device})

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(matrix), dtype=np.float64)


class OnnxScorer:
    """ONNX Runtime session; takes the positive-class column of the probabilities output."""

    def __init__(self, path: str, device: str):
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(path, options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        self.output_name = "probabilities" if "probabilities" in outputs else outputs[-1]

    def predict(self, matrix: np.ndarray) -> np.ndarray:
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


def load_scorer(ref: ModelRef) -> Scorer:
    """The cached scorer for `ref`; verifies the artifact's SHA-256 the first time."""
    key = (ref.artifact_path, ref.sha256, ref.device)
    scorer = _SCORERS.get(key)
    if scorer is None:
        path = artifact_file(ref)
        actual = file_sha256(Path(path))
        if actual != ref.sha256:
            raise ScoringError(
                f"{ref.model} v{ref.version}: {path} fails its checksum "
                f"(expected {ref.sha256[:12]}…, found {actual[:12]}…); refusing to score"
            )
        scorer = XGBoostScorer(path, ref.device) if ref.backend == "xgboost" else OnnxScorer(path, ref.device)
        _SCORERS[key] = scorer
        LOAD_COUNT["loads"] += 1
        log.info(
            "loaded %s v%s (%s on %s) in pid %s", ref.model, ref.version, ref.backend, ref.device, os.getpid()
        )
    return scorer


def feature_matrix(batch: pa.RecordBatch, names: tuple[str, ...]) -> np.ndarray:
    """A C-ordered float32 matrix of the named columns; nulls become NaN (XGBoost's missing)."""
    matrix = np.empty((batch.num_rows, len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        column = batch.column(name)
        if column.null_count:
            column = column.fill_null(float("nan"))
        matrix[:, j] = column.to_numpy(zero_copy_only=False)
    return matrix


def output_schema(entity_key: str) -> pa.Schema:
    return pa.schema(
        [
            (entity_key, pa.int64()),
            (SCORE_COLUMN, pa.float64()),
            ("model_version", pa.int64()),
            ("run_date", pa.date32()),
        ]
    )


def score_batches(
    batches: Iterator[pa.RecordBatch], ref: ModelRef, entity_key: str, run_date: date
) -> Iterator[pa.RecordBatch]:
    """Score each batch: entity key, score in [0, 1], the pinned model version, the run date."""
    scorer = load_scorer(ref)
    schema = output_schema(entity_key)
    for batch in batches:
        if batch.num_rows == 0:
            continue
        scores = scorer.predict(feature_matrix(batch, ref.feature_names))
        yield pa.RecordBatch.from_arrays(
            [
                batch.column(entity_key).cast(pa.int64()),
                pa.array(scores, type=pa.float64()),
                pa.array(np.full(batch.num_rows, ref.version, dtype=np.int64)),
                pa.array(np.full(batch.num_rows, np.datetime64(run_date, "D"))),
            ],
            schema=schema,
        )


def gpu_available() -> bool:
    """Whether this worker sees an NVIDIA GPU and XGBoost was built with CUDA."""
    import xgboost as xgb

    if not xgb.build_info().get("USE_CUDA", False):
        return False
    return Path("/dev/nvidia0").exists() or bool(os.environ.get("CUDA_VISIBLE_DEVICES"))


def choose_device(requested: str, backend: str) -> str:
    """`auto` picks the GPU when present and usable, else the CPU; `cuda` without one fails."""
    has_gpu = gpu_available() if backend == "xgboost" else _ort_has_cuda()
    if requested == "cuda" and not has_gpu:
        raise ScoringError(
            f"inference.device is 'cuda' but no usable GPU was found for the {backend} backend"
        )
    if requested == "auto":
        device = "cuda" if has_gpu else "cpu"
        log.info("inference device auto -> %s (%s)", device, "GPU found" if has_gpu else "no usable GPU")
        return device
    return requested


def _ort_has_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()
