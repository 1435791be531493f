"""One day's `model_performance` and `score_stability` rows from aligned arrays, and the thresholds.

Rows are computed for the whole day (`all`) and for each value of the segment column
(`<column>=<value>`, as the drift gate names segments) with at least `min_rows` rows. Metric
names are those of `batchscore.storage.warehouse.outcomes`. Everything here is pure: the
evaluate job reads the labels, scores and segments and writes what these functions return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import batchscore.model_metrics as model_metrics
from batchscore.quality import performance as m

ALL = "all"


@dataclass(frozen=True)
class Scored:
    """One model version's scores of one day, aligned row by row with labels (when realized).

    `probabilities` (rows x classes) and `predicted` (class indices) are set for multiclass
    scores only; `segments` holds each row's segment value, or is None without a segment column.
    """

    scores: np.ndarray
    segments: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    predicted: np.ndarray | None = None


def segment_masks(
    segments: np.ndarray | None, column: str | None, min_rows: int
) -> list[tuple[str, np.ndarray | None]]:
    """(`all`, None) then (`<column>=<value>`, mask) for each segment with at least `min_rows` rows."""
    groups: list[tuple[str, np.ndarray | None]] = [(ALL, None)]
    if segments is None or column is None:
        return groups
    values = np.asarray(segments, dtype=object)
    present = [v for v in values if v is not None and v == v]  # NaN != NaN
    for value in sorted(set(present), key=str):
        mask = values == value
        if int(mask.sum()) >= min_rows:
            groups.append((f"{column}={_label(value)}", mask))
    return groups


def _label(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def realized_metrics(
    task: str, labels: np.ndarray, scored: Scored, threshold: float, classes: int = 0
) -> dict[str, float | None]:
    """The task's metrics on labeled rows (binary labels 0/1, multiclass labels class indices)."""
    if task == "regression":
        return {
            "rmse": model_metrics.rmse(labels, scored.scores),
            "mae": model_metrics.mae(labels, scored.scores),
        }
    if task == "multiclass":
        assert scored.probabilities is not None and scored.predicted is not None
        return {
            "log_loss": model_metrics.multiclass_log_loss(labels, scored.probabilities),
            "macro_f1": model_metrics.macro_f1(labels, scored.predicted, classes),
            "accuracy": float(np.mean(np.asarray(labels) == np.asarray(scored.predicted))),
        }
    metrics: dict[str, float | None] = {
        "roc_auc": model_metrics.roc_auc(labels, scored.scores),
        "log_loss": model_metrics.log_loss(labels, scored.scores),
        "brier": model_metrics.brier(labels, scored.scores),
        "accuracy": model_metrics.accuracy(labels, scored.scores, threshold),
    }
    for decile, rate in enumerate(model_metrics.calibration_by_decile(labels, scored.scores), start=1):
        metrics[f"calibration_d{decile:02d}"] = rate
    return metrics


def realized_rows(
    task: str,
    labels: np.ndarray,
    scored: Scored,
    threshold: float,
    segment_column: str | None,
    min_segment_rows: int,
    classes: int = 0,
) -> list[dict[str, Any]]:
    """`model_performance` rows (segment, metric, value, row_count) of labeled rows."""
    rows = []
    for segment, mask in segment_masks(scored.segments, segment_column, min_segment_rows):
        part = _subset(scored, mask)
        y = labels if mask is None else labels[mask]
        if y.size == 0:
            continue
        for metric, value in realized_metrics(task, y, part, threshold, classes).items():
            rows.append({"segment": segment, "metric": metric, "value": value, "row_count": int(y.size)})
    return rows


def estimated_rows(
    scored: Scored, threshold: float, segment_column: str | None, min_segment_rows: int, draws: int
) -> list[dict[str, Any]]:
    """CBPE `model_performance` rows (binary scores): expected ROC AUC and accuracy with their band."""
    rows = []
    for segment, mask in segment_masks(scored.segments, segment_column, min_segment_rows):
        scores = scored.scores if mask is None else scored.scores[mask]
        if scores.size == 0:
            continue
        for metric, estimate in m.estimate_binary(scores, threshold, draws).items():
            rows.append(
                {
                    "segment": segment,
                    "metric": metric,
                    "value": estimate.value,
                    "lower": estimate.lower,
                    "upper": estimate.upper,
                    "row_count": int(scores.size),
                }
            )
    return rows


def _subset(scored: Scored, mask: np.ndarray | None) -> Scored:
    if mask is None:
        return scored
    return Scored(
        scores=scored.scores[mask],
        segments=None,
        probabilities=None if scored.probabilities is None else scored.probabilities[mask],
        predicted=None if scored.predicted is None else scored.predicted[mask],
    )


def stability(
    previous_keys: np.ndarray,
    previous_scores: np.ndarray,
    keys: np.ndarray,
    scores: np.ndarray,
    threshold: float | None,
) -> dict[str, Any]:
    """Day-over-day: score PSI (all rows), Spearman and decision flips over shared entities,
    and how many entities are shared, new and gone. `threshold` None (regression) leaves
    decision flips unmeasured."""
    shared, previous_at, current_at = np.intersect1d(previous_keys, keys, return_indices=True)
    prev_shared, cur_shared = previous_scores[previous_at], scores[current_at]
    return {
        "score_psi": m.score_psi(previous_scores, scores),
        "rank_correlation": m.spearman(prev_shared, cur_shared),
        "decision_threshold": threshold,
        "decision_flip_share": None
        if threshold is None
        else m.decision_flip_share(prev_shared, cur_shared, threshold),
        "shared_entities": int(shared.size),
        "new_entities": int(keys.size - shared.size),
        "gone_entities": int(previous_keys.size - shared.size),
    }


def performance_breaches(rows: list[dict[str, Any]], limits: Any) -> list[str]:
    """Why the `all` rows break the pipeline's performance thresholds (`PerformanceSettings`)."""
    checks = {
        "roc_auc": (limits.min_roc_auc, "below", lambda v, t: v < t),
        "log_loss": (limits.max_log_loss, "above", lambda v, t: v > t),
        "brier": (limits.max_brier, "above", lambda v, t: v > t),
        "rmse": (limits.max_rmse, "above", lambda v, t: v > t),
        "macro_f1": (limits.min_macro_f1, "below", lambda v, t: v < t),
    }
    reasons = []
    for row in rows:
        check = checks.get(row["metric"])
        if row["segment"] != ALL or check is None or check[0] is None or row["value"] is None:
            continue
        limit, side, breached = check
        if breached(row["value"], limit):
            reasons.append(f"{row['metric']} {row['value']:.4f} {side} {limit}")
    return reasons


def stability_breaches(row: dict[str, Any], limits: Any) -> list[str]:
    """Why a `score_stability` row breaks the pipeline's stability thresholds (`StabilitySettings`)."""
    reasons = []
    psi, rank, flips = row["score_psi"], row["rank_correlation"], row["decision_flip_share"]
    if limits.max_score_psi is not None and psi is not None and psi > limits.max_score_psi:
        reasons.append(f"score PSI {psi:.4f} above {limits.max_score_psi}")
    if limits.min_rank_correlation is not None and rank is not None and rank < limits.min_rank_correlation:
        reasons.append(f"rank correlation {rank:.4f} below {limits.min_rank_correlation}")
    limit = limits.max_decision_flip_share
    if limit is not None and flips is not None and flips > limit:
        reasons.append(f"decision flip share {flips:.4f} above {limit}")
    return reasons
