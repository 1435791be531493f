"""The training core shared by `jobs.train` and `jobs.retrain`.

Builds the point-in-time training set (features of day D joined with the labels for D that
had landed by the end date), fits XGBoost, computes holdout metrics overall and per segment,
exports UBJ/JSON/ONNX, and registers the version with its model card.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from batchscore.errors import PermanentFailure
from batchscore.model_metrics import calibration_error, classification_metrics, log_loss, roc_auc
from batchscore.models.registry import ModelRegistry, ModelVersion
from batchscore.settings import REPO_ROOT, Settings
from batchscore.storage.lake import Lake, partition_checksum
from features import FeatureSet, compute_features, entity_key_column, load_feature_set

if TYPE_CHECKING:
    import xgboost as xgb
    from pyspark.sql import DataFrame, SparkSession

HASH_BUCKETS = 10_000
ONNX_TOLERANCE = 1e-5


class TrainingError(PermanentFailure, RuntimeError):
    """No usable labelled data, or an exported artifact disagrees with the trained model."""


def training_days(lake: Lake, settings: Settings, end: date) -> tuple[list[date], list[Path]]:
    """Label partitions that landed in the window ending at `end`, and the days they label."""
    labels = settings.pipeline.labels
    arrivals = [end - timedelta(days=k) for k in range(settings.pipeline.training.window_days)]
    label_parts = [lake.raw_partition(labels.dataset, d) for d in sorted(arrivals)]
    label_parts = [p for p in label_parts if lake.available(p)]
    if not label_parts:
        raise TrainingError(
            f"no {labels.dataset} partitions landed in the {len(arrivals)} days up to {end}; "
            "nothing to train on"
        )
    return arrivals, label_parts


def transform(
    raw: DataFrame,
    labels: DataFrame,
    feature_set: FeatureSet,
    label_column: str,
    label_date_column: str,
    max_rows: int,
    holdout_fraction: float,
    label_type: str = "int",
) -> DataFrame:
    """Pure: join each day's features with that day's labels, sample, mark a holdout by entity.

    `label_type` is the Spark type of the label: `int` for classes, `double` for regression.
    """
    from pyspark.sql import functions as F

    key = feature_set.entity_key
    features = compute_features(raw, feature_set, passthrough=("dt",))
    joined = features.join(
        labels.select(
            entity_key_column(labels, key),
            F.col(label_date_column).alias("dt"),
            F.col(label_column).cast(label_type).alias("label"),
        ),
        on=[key, "dt"],
        how="inner",
    )
    bucket = F.abs(F.xxhash64(F.col(key), F.col("dt"))) % HASH_BUCKETS
    entity_bucket = F.abs(F.xxhash64(F.col(key))) % HASH_BUCKETS
    return (
        joined.withColumn("_bucket", bucket)
        .withColumn("holdout", entity_bucket < int(holdout_fraction * HASH_BUCKETS))
        .orderBy("_bucket", key, "dt")
        .limit(max_rows)
        .drop("_bucket")
    )


def fit(frame: pd.DataFrame, feature_names: list[str], settings: Settings) -> xgb.Booster:
    import xgboost as xgb

    training = settings.pipeline.training
    train = frame[~frame["holdout"]]
    holdout = frame[frame["holdout"]]
    dtrain = xgb.DMatrix(
        train[feature_names].to_numpy(np.float32), label=train["label"], feature_names=feature_names
    )
    dvalid = xgb.DMatrix(
        holdout[feature_names].to_numpy(np.float32), label=holdout["label"], feature_names=feature_names
    )
    params = {
        **training.params,
        "objective": "binary:logistic",
        "eval_metric": ["logloss", "auc"],
        "tree_method": "hist",
        "seed": training.seed,
    }
    return xgb.train(
        params,
        dtrain,
        num_boost_round=training.num_boost_round,
        evals=[(dvalid, "holdout")],
        verbose_eval=False,
    )


def evaluate(booster: xgb.Booster, frame: pd.DataFrame, feature_names: list[str]) -> dict[str, float]:
    """Holdout metrics under the model card's names (`holdout_auc`, `holdout_logloss`, ...)."""
    holdout = frame[frame["holdout"]]
    predicted = booster.inplace_predict(holdout[feature_names].to_numpy(np.float32))
    labels = holdout["label"].to_numpy()
    auc = roc_auc(labels, predicted)
    return {
        "holdout_auc": round(float("nan") if auc is None else auc, 6),
        "holdout_logloss": round(log_loss(labels, predicted), 6),
        "holdout_rows": len(holdout),
        "train_rows": int((~frame["holdout"]).sum()),
        "base_rate": round(float(frame["label"].mean()), 6),
    }


def export(booster: xgb.Booster, feature_names: list[str], sample: np.ndarray, out: Path) -> float:
    """Write model.ubj, model.json and model.onnx; returns the ONNX/XGBoost max abs difference."""
    import onnxruntime as ort
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster.save_model(out / "model.ubj")
    booster.save_model(out / "model.json")
    anonymous = booster.copy()
    anonymous.feature_names = None  # onnxmltools only accepts the f0..fN naming
    onnx_model = convert_xgboost(
        anonymous, initial_types=[("features", FloatTensorType([None, len(feature_names)]))], target_opset=15
    )
    (out / "model.onnx").write_bytes(onnx_model.SerializeToString())
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_scores = session.run(["probabilities"], {"features": sample})[0][:, 1]
    diff = float(np.max(np.abs(onnx_scores - booster.inplace_predict(sample))))
    if diff > ONNX_TOLERANCE:
        raise TrainingError(f"ONNX export disagrees with XGBoost by {diff:.2e} (> {ONNX_TOLERANCE})")
    return diff


def xgboost_version() -> str:
    import xgboost as xgb

    return str(xgb.__version__)


def code_version() -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


@dataclass
class TrainingSet:
    """A point-in-time labelled frame and where it came from."""

    frame: pd.DataFrame
    label_dates: list[date]
    raw_parts: list[Path]


def build_training_set(
    settings: Settings, end: date, spark: SparkSession, start: date | None = None
) -> TrainingSet:
    """Labels landed by `end` (from `start` on, when given) joined with the features of their day."""
    pipeline = settings.pipeline
    if pipeline.model.task != "binary":
        raise TrainingError(
            f"batchscore trains binary classifiers only; pipeline {pipeline.name} is {pipeline.model.task}: "
            "train it elsewhere and register it with `batchscore models import`"
        )
    lake = Lake(settings.platform.lake_url)
    feature_set = load_feature_set(pipeline.features)
    _, label_parts = training_days(lake, settings, end)
    labels = spark.read.parquet(*[str(p) for p in label_parts])
    if start is not None:
        from pyspark.sql import functions as F

        labels = labels.where(F.col(pipeline.labels.date_column) >= F.lit(start))
    label_dates = sorted(row[0] for row in labels.select(pipeline.labels.date_column).distinct().collect())
    raw_parts = [lake.raw_partition(pipeline.dataset.name, d) for d in label_dates]
    raw_parts = [p for p in raw_parts if lake.available(p)]
    if not raw_parts:
        raise TrainingError(
            f"no complete {pipeline.dataset.name} partitions for the labelled days {label_dates}"
        )
    raw = spark.read.option("basePath", str(raw_parts[0].parent)).parquet(*[str(p) for p in raw_parts])
    frame: pd.DataFrame = transform(
        raw,
        labels,
        feature_set,
        pipeline.labels.column,
        pipeline.labels.date_column,
        pipeline.training.max_rows,
        pipeline.training.holdout_fraction,
    ).toPandas()
    if frame.empty or frame["label"].nunique() < 2:
        raise TrainingError("the labelled training set is empty or has a single class")
    return TrainingSet(frame, label_dates, raw_parts)


def train_and_register(
    settings: Settings, end: date, data: TrainingSet, extra_metadata: dict[str, Any] | None = None
) -> tuple[ModelVersion, xgb.Booster]:
    """Fit on the training rows, export, and register the version with its metadata and card."""
    pipeline = settings.pipeline
    lake = Lake(settings.platform.lake_url)
    feature_set = load_feature_set(pipeline.features)
    names = feature_set.names
    booster = fit(data.frame, names, settings)
    metrics, by_segment = holdout_metrics(booster, data.frame, names, pipeline.drift.segment_column)
    reference, matrix = reference_sample(
        booster, data.frame, feature_set, pipeline.training.reference_sample_rows
    )
    registry = ModelRegistry(lake, pipeline.model.name)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        onnx_diff = export(booster, names, matrix[:2000], out)
        reference.to_parquet(out / "reference.parquet", index=False)
        metadata = model_card_metadata(settings, end, data, feature_set, metrics, by_segment, onnx_diff)
        version = registry.register(out, {**metadata, **(extra_metadata or {})})
    return version, booster


def holdout_metrics(
    booster: xgb.Booster, frame: pd.DataFrame, names: list[str], segment_column: str | None
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Holdout metrics (with calibration error), and per segment when a segment column is set."""
    metrics = evaluate(booster, frame, names)
    holdout = frame[frame["holdout"]]
    predicted = booster.inplace_predict(holdout[names].to_numpy(np.float32))
    metrics["holdout_calibration_error"] = round(calibration_error(holdout["label"].to_numpy(), predicted), 6)
    by_segment = (
        segment_metrics(
            holdout["label"].to_numpy(), predicted, holdout[segment_column].to_numpy(), segment_column
        )
        if segment_column
        else {}
    )
    return metrics, by_segment


def reference_sample(
    booster: xgb.Booster, frame: pd.DataFrame, feature_set: FeatureSet, rows: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """A seeded sample of keys, features and scores (the drift reference), and its feature matrix."""
    names = feature_set.names
    reference = frame.sample(n=min(len(frame), rows), random_state=0)
    reference = reference[[feature_set.entity_key, *names]].reset_index(drop=True)
    matrix = reference[names].to_numpy(np.float32)
    reference["score"] = booster.inplace_predict(matrix).astype(np.float64)
    return reference, matrix


def model_card_metadata(
    settings: Settings,
    end: date,
    data: TrainingSet,
    feature_set: FeatureSet,
    metrics: dict[str, float],
    by_segment: dict[str, dict[str, float]],
    onnx_diff: float,
) -> dict[str, Any]:
    """The registered version's metadata: lineage, training window and data, metrics, params."""
    pipeline = settings.pipeline
    return {
        "pipeline": pipeline.name,
        "predicts": pipeline.description,
        "label": pipeline.labels.column,
        "created_at": datetime.now(UTC).isoformat(),
        "code_version": code_version(),
        "feature_set": {
            "name": feature_set.name,
            "version": feature_set.version,
            "hash": feature_set.content_hash,
            "features": feature_set.names,
        },
        "training_window": {
            "start": data.label_dates[0].isoformat(),
            "end": data.label_dates[-1].isoformat(),
            "labels_landed_by": end.isoformat(),
        },
        "training_data": {p.name: partition_checksum(p) for p in data.raw_parts},
        "metrics": metrics,
        "metrics_by_segment": by_segment,
        "params": dict(pipeline.training.params),
        "num_boost_round": pipeline.training.num_boost_round,
        "onnx_max_abs_diff": onnx_diff,
        "xgboost_version": xgboost_version(),
    }


def segment_metrics(
    labels: np.ndarray, predicted: np.ndarray, segments: np.ndarray, column: str
) -> dict[str, dict[str, float]]:
    """Classification metrics for each value of the segment column (missing values skipped)."""
    out = {}
    for value in np.unique(segments[~pd.isna(segments)]):
        mask = segments == value
        label = f"{column}={int(value) if float(value).is_integer() else value}"
        out[label] = classification_metrics(labels[mask], predicted[mask])
    return out
