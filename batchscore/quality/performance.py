"""How good scores should be before labels land, and how much they moved from one day to the next.

Realized metrics (once labels land) are `batchscore.model_metrics`. Estimated (binary, before
labels land): confidence-based performance estimation (CBPE), which takes each calibrated score
as the probability that its row is positive, so the expected confusion counts at every
threshold, and from them the expected ROC AUC and accuracy, follow from the scores alone. Its
band is a parametric bootstrap: labels drawn from the scores (seeded), the 2.5 and 97.5
percentiles of the metric over the draws, i.e. where the realized value should fall if the
scores are calibrated. Stability: PSI of the score distribution (the drift gate's definition),
Spearman rank correlation over shared entities, and the share of decisions that flip at a
threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from batchscore.model_metrics import as_floats, average_ranks

BOOTSTRAP_DRAWS = 200
BAND = (2.5, 97.5)


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
    p = as_floats(scores)
    positives, negatives = float(p.sum()), float((1 - p).sum())
    if positives <= 0 or negatives <= 0:
        return None
    values, inverse = np.unique(-p, return_inverse=True)  # descending scores
    tp = np.r_[0.0, np.cumsum(np.bincount(inverse, weights=p, minlength=values.size))] / positives
    fp = np.r_[0.0, np.cumsum(np.bincount(inverse, weights=1 - p, minlength=values.size))] / negatives
    return float(np.sum((fp[1:] - fp[:-1]) * (tp[1:] + tp[:-1]) / 2.0))


def expected_accuracy(scores: np.ndarray, threshold: float = 0.5) -> float:
    """CBPE's accuracy: a row decided positive is right with probability p, negative with 1 - p."""
    p = as_floats(scores)
    return float(np.mean(np.where(p >= threshold, p, 1 - p)))


def estimate_binary(
    scores: np.ndarray, threshold: float = 0.5, draws: int = BOOTSTRAP_DRAWS, seed: int = 0
) -> dict[str, Estimate]:
    """Expected ROC AUC and accuracy of one day's scores, each with its 95% band.

    The band draws `draws` label sets y ~ Bernoulli(p) (seeded: the same scores give the same
    band) and takes the metrics' percentiles over them; ranks are computed once, so a draw
    costs one pass over the rows.
    """
    p = as_floats(scores)
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

    return psi(as_floats(previous), as_floats(current))


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
    return float(np.mean((as_floats(previous) >= threshold) != (as_floats(current) >= threshold)))
