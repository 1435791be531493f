"""How good scores were once labels land, how good they should be before, and how much they moved.

Pure numpy over arrays of one day's rows. Realized: ROC AUC (rank-based, ties averaged), log
loss, Brier score, accuracy at a decision threshold and calibration by score decile (binary);
RMSE and MAE (regression); log loss and macro F1 (multiclass). Estimated (binary, before labels
land): confidence-based performance estimation (CBPE), which takes each calibrated score as the
probability that its row is positive, so the expected confusion counts at every threshold, and
from them the expected ROC AUC and accuracy, follow from the scores alone. Its band is a
parametric bootstrap: labels drawn from the scores (seeded), the 2.5 and 97.5 percentiles of the
metric over the draws, i.e. where the realized value should fall if the scores are calibrated.
Stability: PSI of the score distribution (the drift gate's definition), Spearman rank
correlation over shared entities, and the share of decisions that flip at a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPSILON = 1e-15
"""Probabilities are clipped to [EPSILON, 1 - EPSILON] in log loss (scikit-learn's choice)."""

DECILES = 10
BOOTSTRAP_DRAWS = 200
BAND = (2.5, 97.5)


def _floats(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    values = _floats(values)
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
    y, p = _floats(labels), np.clip(_floats(scores), EPSILON, 1 - EPSILON)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def brier(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean squared difference between the score and the 0/1 label."""
    return float(np.mean((_floats(scores) - _floats(labels)) ** 2))


def accuracy(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    """Share of rows whose decision (score >= threshold) equals the label."""
    return float(np.mean((_floats(scores) >= threshold) == np.asarray(labels).astype(bool)))


def calibration_by_decile(labels: np.ndarray, scores: np.ndarray) -> list[float | None]:
    """Observed positive rate in each score decile, lowest scores first.

    Rows are ordered by score (ties by their order in the input) and cut into 10 groups of
    equal count (`numpy.array_split`: the first groups get the extra rows); an empty group
    (fewer than 10 rows) is None.
    """
    y = _floats(labels)
    order = np.argsort(_floats(scores), kind="mergesort")
    return [float(y[part].mean()) if part.size else None for part in np.array_split(order, DECILES)]


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((_floats(predicted) - _floats(actual)) ** 2)))


def mae(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(_floats(predicted) - _floats(actual))))


def multiclass_log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log of the probability given to the true class (labels are class indices;
    each row of `probabilities` is renormalised after clipping, as scikit-learn does)."""
    p = np.clip(_floats(probabilities), EPSILON, 1 - EPSILON)
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


@dataclass(frozen=True)
class Estimate:
    """An expected metric and the band the realized value should fall in if scores are calibrated."""

    value: float | None
    lower: float | None
    upper: float | None


def expected_roc_auc(scores: np.ndarray) -> float | None:
    """CBPE's ROC AUC: the area under the expected ROC curve.

    Ordered by score (descending), each distinct score adds its rows' expected positives
    (sum of p) to TP and expected negatives (sum of 1 - p) to FP; TPR and FPR are those
    running sums over their totals, and the area is taken with the trapezoidal rule (a tie
    group is one diagonal step, as ties count one half in the realized AUC).
    """
    p = _floats(scores)
    positives, negatives = float(p.sum()), float((1 - p).sum())
    if positives <= 0 or negatives <= 0:
        return None
    values, inverse = np.unique(-p, return_inverse=True)  # descending scores
    tp = np.r_[0.0, np.cumsum(np.bincount(inverse, weights=p, minlength=values.size))] / positives
    fp = np.r_[0.0, np.cumsum(np.bincount(inverse, weights=1 - p, minlength=values.size))] / negatives
    return float(np.sum((fp[1:] - fp[:-1]) * (tp[1:] + tp[:-1]) / 2.0))


def expected_accuracy(scores: np.ndarray, threshold: float = 0.5) -> float:
    """CBPE's accuracy: a row decided positive is right with probability p, negative with 1 - p."""
    p = _floats(scores)
    return float(np.mean(np.where(p >= threshold, p, 1 - p)))


def estimate_binary(
    scores: np.ndarray, threshold: float = 0.5, draws: int = BOOTSTRAP_DRAWS, seed: int = 0
) -> dict[str, Estimate]:
    """Expected ROC AUC and accuracy of one day's scores, each with its 95% band.

    The band draws `draws` label sets y ~ Bernoulli(p) (seeded: the same scores give the same
    band) and takes the metrics' percentiles over them; ranks are computed once, so a draw
    costs one pass over the rows.
    """
    p = _floats(scores)
    rng = np.random.default_rng(seed)
    ranks = average_ranks(p)
    decided = p >= threshold
    aucs, accuracies = [], []
    for _ in range(draws):
        y = rng.random(p.size) < p
        positives = int(y.sum())
        negatives = p.size - positives
        if positives and negatives:
            aucs.append((float(ranks[y].sum()) - positives * (positives + 1) / 2.0) / (positives * negatives))
        accuracies.append(float(np.mean(decided == y)))

    def band(samples: list[float]) -> tuple[float | None, float | None]:
        if not samples:
            return None, None
        low, high = np.percentile(samples, BAND)
        return float(low), float(high)

    return {
        "roc_auc": Estimate(expected_roc_auc(p), *band(aucs)),
        "accuracy": Estimate(expected_accuracy(p, threshold) if p.size else None, *band(accuracies)),
    }


def score_psi(previous: np.ndarray, current: np.ndarray) -> float:
    """PSI of the current day's scores against the previous day's, as the drift gate measures it."""
    from batchscore.quality.drift import psi

    return psi(_floats(previous), _floats(current))


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation: Pearson's correlation of the average ranks (None when either
    side is constant or there are fewer than two rows)."""
    if len(a) < 2:
        return None
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(np.sqrt(np.sum(ra**2) * np.sum(rb**2)))
    return float(np.sum(ra * rb)) / denominator if denominator else None


def decision_flip_share(previous: np.ndarray, current: np.ndarray, threshold: float) -> float | None:
    """Share of shared entities whose decision (score >= threshold) differs between the days."""
    if len(previous) == 0:
        return None
    return float(np.mean((_floats(previous) >= threshold) != (_floats(current) >= threshold)))
