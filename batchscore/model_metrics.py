"""How good scores are against labels: one home for every metric, its name and its epsilon.

Pure numpy over arrays of rows. Binary: ROC AUC (rank-based, ties averaged: equal to
scikit-learn's), log loss, Brier score, accuracy at a threshold, calibration by score decile and
the expected calibration error; regression: RMSE, MAE, bias; multiclass: log loss, accuracy,
macro F1. Imports nothing of batchscore, so training (`models`) and realized performance
(`quality`) measure with the same code.

One metric, the names it is stored under (they are kept as they are, at each edge):
ROC AUC is `auc` in model comparisons and promotion evidence (`classification_metrics`),
`holdout_auc` on a model card (`models.training`), and `roc_auc` in the warehouse's
performance table (`quality.evaluation`); log loss is `logloss`, `holdout_logloss`, `log_loss`.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-15
"""Probabilities are clipped to [EPSILON, 1 - EPSILON] before a logarithm (scikit-learn's choice),
in every log loss."""

DECILES = 10


def as_floats(values: np.ndarray) -> np.ndarray:
    """`values` as a float64 array (no copy when they already are)."""
    return np.asarray(values, dtype=np.float64)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    values = as_floats(values)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]
    mean_rank = (starts + ends + 1) / 2.0  # ranks starts+1 .. ends, averaged
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """P(score of a positive > score of a negative), ties counting one half (Mann-Whitney U).

    None when only one class is present: the AUC is undefined.
    """
    y = np.asarray(labels).astype(bool)
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return None
    rank_sum = float(average_ranks(scores)[y].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def log_loss(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean negative log-likelihood of binary labels under the scores."""
    y, p = as_floats(labels), np.clip(as_floats(scores), EPSILON, 1 - EPSILON)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def brier(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean squared difference between the score and the 0/1 label."""
    return float(np.mean((as_floats(scores) - as_floats(labels)) ** 2))


def accuracy(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    """Share of rows whose decision (score >= threshold) equals the label."""
    return float(np.mean((as_floats(scores) >= threshold) == np.asarray(labels).astype(bool)))


def calibration_by_decile(labels: np.ndarray, scores: np.ndarray) -> list[float | None]:
    """Observed positive rate in each score decile, lowest scores first.

    Rows are ordered by score (ties by their order in the input) and cut into 10 groups of
    equal count (`numpy.array_split`: the first groups get the extra rows); an empty group
    (fewer than 10 rows) is None.
    """
    y = as_floats(labels)
    order = np.argsort(as_floats(scores), kind="mergesort")
    return [float(y[part].mean()) if part.size else None for part in np.array_split(order, DECILES)]


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((as_floats(predicted) - as_floats(actual)) ** 2)))


def mae(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(as_floats(predicted) - as_floats(actual))))


def multiclass_log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log of the probability given to the true class (labels are class indices;
    each row of `probabilities` is renormalised after clipping, as scikit-learn does)."""
    p = np.clip(as_floats(probabilities), EPSILON, 1 - EPSILON)
    p = p / p.sum(axis=1, keepdims=True)
    y = np.asarray(labels, dtype=np.int64)
    return float(-np.mean(np.log(p[np.arange(y.size), y])))


def macro_f1(labels: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    """Unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN); a class never true nor
    predicted counts 0 (scikit-learn's `zero_division=0`)."""
    y, yhat = np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    scores = []
    for c in range(classes):
        tp = int(np.sum((y == c) & (yhat == c)))
        wrong = int(np.sum((y != c) & (yhat == c))) + int(np.sum((y == c) & (yhat != c)))
        scores.append(2 * tp / (2 * tp + wrong) if tp + wrong else 0.0)
    return float(np.mean(scores))


def calibration_error(labels: np.ndarray, predicted: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the row-weighted gap between mean score and event rate per decile."""
    if len(labels) == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(predicted, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(float(predicted[mask].mean()) - float(labels[mask].mean()))
    return total / len(labels)


def classification_metrics(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """`rows`, `auc` (NaN with a single class), `logloss` and `calibration_error` of binary scores."""
    auc = roc_auc(labels, predicted)
    return {
        "rows": len(labels),
        "auc": round(float("nan") if auc is None else auc, 6),
        "logloss": round(log_loss(labels, predicted), 6),
        "calibration_error": round(calibration_error(labels, predicted), 6),
    }


def regression_metrics(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """`rows`, `rmse`, `mae` and `bias` (mean of predicted minus actual) of predicted values."""
    return {
        "rows": len(labels),
        "rmse": round(rmse(labels, predicted), 6),
        "mae": round(mae(labels, predicted), 6),
        "bias": round(float(np.mean(as_floats(predicted) - as_floats(labels))), 6),
    }


def multiclass_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """`rows`, `logloss` and `accuracy` of class probabilities against class indexes."""
    return {
        "rows": len(labels),
        "logloss": round(multiclass_log_loss(labels, probabilities), 6),
        "accuracy": round(float(np.mean(np.asarray(probabilities).argmax(axis=1) == labels)), 6),
    }
