"""Drift of a day's features and scores against the model's training reference.

The gate's statistics are computed natively (numpy/scipy) on the whole partition, with
Evidently 0.7's definitions so the report and the gate agree on the same data:

- `psi` (default): the Population Stability Index with Evidently's binning and smoothing
  (equal-width Sturges bins over reference+current for numerical columns with more than
  20 distinct reference values, per-value frequencies otherwise; empty bins filled with a
  tiny share); drifted when PSI >= threshold.
- `ks`: the two-sample Kolmogorov-Smirnov p-value; drifted when p <= threshold.
- `wasserstein`: the first Wasserstein distance normed by the reference's standard
  deviation (at least 0.001); drifted when >= threshold.

Missing and infinite values are dropped first, as Evidently does. Drift is measured on the
whole partition and, when a segment column is configured, within each of its segments
against the reference rows of the same segment. Evidently only renders the report, from a
deterministic sample (`batchscore.quality.drift_report`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from batchscore.quality.drift_report import deterministic_sample, write_drift_report  # noqa: F401 (re-exported)

DISTINCT_FOR_BINNING = 20
KS_EXACT_MAX_N = 10_000  # scipy's ks_2samp uses its exact mode up to this sample size


ALL_ROWS = "all"
METHODS = ("psi", "ks", "wasserstein")


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    method: str
    statistic: float
    threshold: float
    drifted: bool
    segment: str = ALL_ROWS


@dataclass(frozen=True)
class SegmentDrift:
    """Drift of the rows of one segment (e.g. `contract_monthly=1`) against the same segment of
    the reference."""

    segment: str
    features: list[FeatureDrift]
    drifted_share: float
    prediction: FeatureDrift | None
    reference_rows: int
    current_rows: int

    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]


@dataclass(frozen=True)
class DriftResult:
    features: list[FeatureDrift]
    drifted_share: float
    prediction: FeatureDrift | None
    reference_rows: int
    current_rows: int
    seconds: float
    segments: list[SegmentDrift] = field(default_factory=list)

    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def all_metrics(self) -> list[FeatureDrift]:
        """Every statistic measured: whole partition first, then each segment."""
        rows = [*self.features, *([self.prediction] if self.prediction else [])]
        for seg in self.segments:
            rows += [*seg.features, *([seg.prediction] if seg.prediction else [])]
        return rows

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


def _finite(values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    return array[np.isfinite(array)]


def ks_pvalue(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sided two-sample Kolmogorov-Smirnov p-value, as scipy's `ks_2samp` (Evidently's `ks`).

    For large samples (scipy's asymptotic mode) the statistic is computed here with one sort
    per side and the ECDFs evaluated at the distinct values only, which is exact and about
    twice as fast as scipy's search over all points; the p-value is scipy's `kstwo.sf`.
    """
    from scipy.stats import distributions, ks_2samp

    ref, cur = np.sort(_finite(reference)), np.sort(_finite(current))
    n1, n2 = ref.size, cur.size
    if n1 == 0 or n2 == 0:
        return float("nan")
    if max(n1, n2) <= KS_EXACT_MAX_N:
        return float(ks_2samp(ref, cur)[1])
    diffs = []
    for own, other, n_own, n_other, sign in ((ref, cur, n1, n2, 1.0), (cur, ref, n2, n1, -1.0)):
        ends = np.flatnonzero(np.r_[own[1:] != own[:-1], True])  # last index of each distinct value
        own_cdf = (ends + 1) / n_own
        other_cdf = np.searchsorted(other, own[ends], side="right") / n_other
        diffs.append(sign * (own_cdf - other_cdf))
    cddiffs = np.concatenate(diffs)
    max_s, min_s = float(cddiffs.max()), float(np.clip(-cddiffs.min(), 0, 1))
    d = min_s if min_s > max_s else max_s
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return float(np.clip(distributions.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))


def wasserstein_norm(reference: np.ndarray, current: np.ndarray) -> float:
    """First Wasserstein distance normed by the reference's std (Evidently's `wasserstein`)."""
    from scipy.stats import wasserstein_distance

    ref, cur = _finite(reference), _finite(current)
    if ref.size == 0 or cur.size == 0:
        return float("nan")
    return float(wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001))


STATISTICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "psi": psi,
    "ks": ks_pvalue,
    "wasserstein": wasserstein_norm,
}


def is_drifted(method: str, statistic: float, threshold: float) -> bool:
    """KS drifts on a small p-value, the distances on a large value; NaN never drifts."""
    if not np.isfinite(statistic):
        return False
    return statistic <= threshold if method == "ks" else statistic >= threshold


def _measure(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    methods: dict[str, str],
    thresholds: dict[str, float],
    segment: str,
) -> list[FeatureDrift]:
    """One statistic per column; columns run on a thread each (numpy and scipy sort without the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(column: str) -> FeatureDrift:
        method, threshold = methods[column], thresholds[column]
        value = STATISTICS[method](reference[column].to_numpy(), current[column].to_numpy())
        return FeatureDrift(column, method, value, threshold, is_drifted(method, value, threshold), segment)

    with ThreadPoolExecutor(max_workers=min(len(columns), os.cpu_count() or 1) or 1) as pool:
        return list(pool.map(one, columns))


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    *,
    methods: dict[str, str] | None = None,
    default_method: str = "psi",
    thresholds: dict[str, float] | None = None,
    default_threshold: float | None = None,
    prediction_column: str | None = None,
    segment_column: str | None = None,
    min_segment_rows: int = 1,
) -> DriftResult:
    """Drift per feature (and for the prediction), on the whole data and per segment.

    `methods`/`thresholds` override the defaults per column; a missing default threshold is
    the method's Evidently default. Segments with fewer than `min_segment_rows` rows on
    either side are skipped: their statistics would be noise.
    """
    started = time.perf_counter()
    has_prediction = bool(
        prediction_column and prediction_column in reference and prediction_column in current
    )
    columns = [*features, *([prediction_column] if has_prediction and prediction_column else [])]
    method_of, threshold_of = _resolve_methods(
        columns, methods, default_method, thresholds, default_threshold
    )
    measured = _measure(reference, current, columns, method_of, threshold_of, ALL_ROWS)
    whole, prediction = _split_prediction(measured, has_prediction)
    segments: list[SegmentDrift] = []
    if segment_column is not None:
        segments = _segment_drifts(
            reference,
            current,
            segment_column,
            min_segment_rows,
            columns,
            method_of,
            threshold_of,
            has_prediction,
        )
    return DriftResult(
        features=whole,
        drifted_share=_share(whole),
        prediction=prediction,
        reference_rows=len(reference),
        current_rows=len(current),
        seconds=time.perf_counter() - started,
        segments=segments,
    )


def _resolve_methods(
    columns: list[str],
    methods: dict[str, str] | None,
    default_method: str,
    thresholds: dict[str, float] | None,
    default_threshold: float | None,
) -> tuple[dict[str, str], dict[str, float]]:
    """Each column's method and threshold; raises ValueError on an unknown method."""
    from batchscore.settings import DEFAULT_DRIFT_THRESHOLDS

    method_of = {c: (methods or {}).get(c, default_method) for c in columns}
    unknown = sorted({m for m in method_of.values() if m not in STATISTICS})
    if unknown:
        raise ValueError(f"unknown drift method(s) {unknown}; known: {', '.join(METHODS)}")
    threshold_of = {
        c: float(
            (thresholds or {}).get(
                c,
                default_threshold
                if default_threshold is not None and method_of[c] == default_method
                else DEFAULT_DRIFT_THRESHOLDS[method_of[c]],
            )
        )
        for c in columns
    }
    return method_of, threshold_of


def _split_prediction(
    measured: list[FeatureDrift], has_prediction: bool
) -> tuple[list[FeatureDrift], FeatureDrift | None]:
    """(feature statistics, prediction statistic): the prediction, when measured, is last."""
    if has_prediction:
        return measured[:-1], measured[-1]
    return measured, None


def _segment_drifts(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    segment_column: str,
    min_segment_rows: int,
    columns: list[str],
    method_of: dict[str, str],
    threshold_of: dict[str, float],
    has_prediction: bool,
) -> list[SegmentDrift]:
    """Drift within each segment present on both sides with at least `min_segment_rows` rows."""
    if segment_column not in reference or segment_column not in current:
        raise ValueError(f"segment column {segment_column!r} is not in the reference and current data")
    segments: list[SegmentDrift] = []
    ref_groups = dict(tuple(reference.groupby(segment_column, dropna=False, sort=True)))
    for value, cur_part in current.groupby(segment_column, dropna=False, sort=True):
        ref_part = ref_groups.get(value)
        if ref_part is None or len(ref_part) < min_segment_rows or len(cur_part) < min_segment_rows:
            continue
        name = f"{segment_column}={_segment_label(value)}"
        seg_features, seg_prediction = _split_prediction(
            _measure(ref_part, cur_part, columns, method_of, threshold_of, name), has_prediction
        )
        segments.append(
            SegmentDrift(
                segment=name,
                features=seg_features,
                drifted_share=_share(seg_features),
                prediction=seg_prediction,
                reference_rows=len(ref_part),
                current_rows=len(cur_part),
            )
        )
    return segments


def _share(features: list[FeatureDrift]) -> float:
    return sum(f.drifted for f in features) / len(features) if features else 0.0


def _segment_label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
