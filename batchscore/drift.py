"""Drift of a day's features and scores against the model's training reference.

The gate's statistic is the Population Stability Index computed natively with numpy on the
whole partition, with the same binning and smoothing as Evidently 0.7's `psi` stattest
(equal-width Sturges bins over reference+current for numerical columns with more than
20 distinct reference values, per-value frequencies otherwise; empty bins filled with a
tiny share), so the numbers in the Evidently report and the gate agree on the same data.
Evidently only renders the report, from a deterministic sample.
"""

from __future__ import annotations

import os
import time
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DISTINCT_FOR_BINNING = 20


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    method: str
    statistic: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    features: list[FeatureDrift]
    drifted_share: float
    prediction: FeatureDrift | None
    reference_rows: int
    current_rows: int
    seconds: float

    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fill_zeroes(percents: np.ndarray) -> np.ndarray:
    """Evidently's smoothing: empty bins get a share far below the smallest observed one."""
    nonzero = percents[percents != 0]
    if nonzero.size == 0:
        return percents
    smallest = nonzero.min()
    return np.where(percents == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001, percents)


def psi(reference: np.ndarray, current: np.ndarray, bins: int | None = None) -> float:
    """PSI between two samples; NaN and ±inf are dropped first, as Evidently does.

    `bins=None` uses Sturges' rule over the combined data (Evidently's choice). A side that
    is empty after dropping missing values yields NaN: there is nothing to compare.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref = ref[np.isfinite(ref)]
    cur = cur[np.isfinite(cur)]
    if ref.size == 0 or cur.size == 0:
        return float("nan")
    ref_values = np.unique(ref)
    if ref_values.size > DISTINCT_FOR_BINNING:
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins=bins or "sturges")
        ref_pct = np.histogram(ref, edges)[0] / ref.size
        cur_pct = np.histogram(cur, edges)[0] / cur.size
    else:
        keys = np.union1d(ref_values, np.unique(cur))
        ref_pct = np.bincount(np.searchsorted(keys, ref), minlength=keys.size) / ref.size
        cur_pct = np.bincount(np.searchsorted(keys, cur), minlength=keys.size) / cur.size
    ref_pct = _fill_zeroes(ref_pct.astype(np.float64))
    cur_pct = _fill_zeroes(cur_pct.astype(np.float64))
    return float(np.sum((ref_pct - cur_pct) * np.log(ref_pct / cur_pct)))


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    *,
    thresholds: dict[str, float] | None = None,
    default_threshold: float = 0.2,
    prediction_column: str | None = None,
) -> DriftResult:
    """PSI per feature (and for the prediction), drifted when PSI >= its threshold."""
    started = time.perf_counter()
    thresholds = thresholds or {}

    def one(column: str) -> FeatureDrift:
        threshold = float(thresholds.get(column, default_threshold))
        value = psi(reference[column].to_numpy(), current[column].to_numpy())
        return FeatureDrift(column, "psi", value, threshold, bool(np.isfinite(value) and value >= threshold))

    per_feature = [one(column) for column in features]
    prediction = one(prediction_column) if prediction_column and prediction_column in reference else None
    drifted = sum(f.drifted for f in per_feature)
    return DriftResult(
        features=per_feature,
        drifted_share=drifted / len(per_feature) if per_feature else 0.0,
        prediction=prediction,
        reference_rows=len(reference),
        current_rows=len(current),
        seconds=time.perf_counter() - started,
    )


def deterministic_sample(df: pd.DataFrame, n: int, key: str, seed: int = 0) -> pd.DataFrame:
    """The same `n` rows for the same data whatever its order: smallest hashes of (seed, key)."""
    if len(df) <= n:
        return df.sort_values(key).reset_index(drop=True)
    salted = pd.DataFrame({"key": df[key].to_numpy(), "seed": seed})
    hashes = pd.util.hash_pandas_object(salted, index=False).to_numpy()
    keep = np.argpartition(hashes, n - 1)[:n]
    return df.iloc[keep].sort_values(key).reset_index(drop=True)


def write_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    out_dir: str | Path,
    *,
    title: str,
    prediction_column: str | None = None,
) -> tuple[Path, Path]:
    """Evidently's data drift report (PSI, numerical columns) as `drift.html` and `drift.json`."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = [*features, *([prediction_column] if prediction_column else [])]
    definition = DataDefinition(numerical_columns=columns)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = Report([DataDriftPreset(columns=columns, method="psi")], metadata={"title": title})
        snapshot = report.run(
            current_data=Dataset.from_pandas(current[columns], data_definition=definition),
            reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
        )
        html_path, json_path = out / "drift.html", out / "drift.json"
        for target, save in ((html_path, snapshot.save_html), (json_path, snapshot.save_json)):
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            save(str(tmp))
            os.replace(tmp, target)
    return html_path, json_path
