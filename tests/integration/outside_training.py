"""Models trained the way a team outside batchscore would: plain xgboost and scikit-learn on
features computed from the lake with the pipeline's shared feature definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import compute_features, load_feature_set


def training_frame(spark: Any, lake: Path, pipeline: str = "deliveries") -> pd.DataFrame:
    """Features of every shipments partition joined with the outcomes that labelled them."""
    from pyspark.sql import functions as F

    feature_set = load_feature_set(f"features.{pipeline}")
    raw = spark.read.parquet(str(lake / "raw" / "shipments"))
    labels = spark.read.parquet(str(lake / "raw" / "shipment_outcomes")).select(
        "shipment_id", F.col("delivery_hours").cast("double"), "delivery_speed"
    )
    return compute_features(raw, feature_set).join(labels, "shipment_id").toPandas()


def train_xgboost(frame: pd.DataFrame, out: Path) -> Path:
    import xgboost as xgb

    names = load_feature_set("features.deliveries").names
    matrix = xgb.DMatrix(
        frame[names].to_numpy(np.float32), label=frame["delivery_hours"], feature_names=names
    )
    booster = xgb.train({"objective": "reg:squarederror", "max_depth": 5, "eta": 0.2}, matrix, 60)
    path = out / "deliveries.json"
    booster.save_model(str(path))
    return path


def train_sklearn_onnx(frame: pd.DataFrame, out: Path) -> tuple[Path, Any]:
    """A scikit-learn regressor exported with skl2onnx; the feature names go in its metadata."""
    import json

    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    names = load_feature_set("features.deliveries").names
    x = frame[names].to_numpy(np.float32)
    model = make_pipeline(
        SimpleImputer(), GradientBoostingRegressor(n_estimators=40, max_depth=3, random_state=0)
    )
    model.fit(x, frame["delivery_hours"])
    onx = to_onnx(model, x[:1], target_opset=15)
    entry = onx.metadata_props.add()
    entry.key, entry.value = "feature_names", json.dumps(names)
    path = out / "deliveries-sklearn.onnx"
    path.write_bytes(onx.SerializeToString())
    return path, model


def train_xgboost_multiclass(frame: pd.DataFrame, out: Path) -> Path:
    """A `multi:softprob` booster whose class k is SPEEDS[k] (the pipeline's `classes` order)."""
    import xgboost as xgb

    from batchscore.examples.deliveries import SPEEDS

    names = load_feature_set("features.deliveries").names
    label = frame["delivery_speed"].map({s: k for k, s in enumerate(SPEEDS)})
    matrix = xgb.DMatrix(frame[names].to_numpy(np.float32), label=label, feature_names=names)
    params = {"objective": "multi:softprob", "num_class": len(SPEEDS), "max_depth": 4, "eta": 0.3}
    booster = xgb.train(params, matrix, 30)
    path = out / "delivery_speed.ubj"
    booster.save_model(str(path))
    return path
