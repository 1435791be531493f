"""Each performance, estimation and stability metric against a value computed by hand on a tiny frame."""

from __future__ import annotations

import math

import numpy as np
import pytest

import batchscore.model_metrics as model_metrics
from batchscore.quality import performance as m
from batchscore.quality.evaluation import (
    Scored,
    estimated_rows,
    performance_breaches,
    realized_rows,
    segment_masks,
    stability,
    stability_breaches,
)
from batchscore.settings import PerformanceSettings, StabilitySettings

Y = np.array([0, 0, 1, 1])
P = np.array([0.1, 0.4, 0.35, 0.8])


def test_roc_auc_counts_won_pairs_and_half_ties():
    # positives 0.35, 0.8 against negatives 0.1, 0.4: 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 -> 3/4
    assert model_metrics.roc_auc(Y, P) == pytest.approx(0.75)
    # positives 0.5, 0.9 against negatives 0.5, 0.2: tie (1/2), 0.5>0.2, 0.9>0.5, 0.9>0.2 -> 3.5/4
    assert model_metrics.roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)
    assert model_metrics.roc_auc([1, 1], [0.2, 0.3]) is None  # one class: undefined


def test_log_loss_brier_and_accuracy():
    # -(ln(1 - 0.1) + ln(1 - 0.4) + ln 0.35 + ln 0.8) / 4
    hand = -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4
    assert model_metrics.log_loss(Y, P) == pytest.approx(hand)
    # (0.1² + 0.4² + 0.65² + 0.2²) / 4 = (0.01 + 0.16 + 0.4225 + 0.04) / 4
    assert model_metrics.brier(Y, P) == pytest.approx(0.158125)
    # decisions at 0.5: 0, 0, 0, 1 against 0, 0, 1, 1 -> 3 of 4 right; at 0.3: 0, 1, 1, 1 -> 3 of 4
    assert model_metrics.accuracy(Y, P, 0.5) == pytest.approx(0.75)
    assert model_metrics.accuracy(Y, P, 0.3) == pytest.approx(0.75)
    # at 0.39: 0, 1, 0, 1 -> 2 of 4; at 0.9: all 0 -> 2 of 4
    assert model_metrics.accuracy(Y, P, 0.39) == pytest.approx(0.5)
    assert model_metrics.accuracy(Y, P, 0.9) == pytest.approx(0.5)


def test_calibration_by_decile_is_the_positive_rate_of_each_score_decile():
    scores = np.arange(20) / 20  # two rows per decile, in score order
    labels = np.array([0, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1])
    # pairs: (0,0) (0,1) (0,0) (1,1) (0,1) (1,0) (1,1) (1,1) (0,1) (1,1)
    assert model_metrics.calibration_by_decile(labels, scores) == [
        0.0,
        0.5,
        0.0,
        1.0,
        0.5,
        0.5,
        1.0,
        1.0,
        0.5,
        1.0,
    ]
    shuffled = np.random.default_rng(1).permutation(20)
    assert model_metrics.calibration_by_decile(
        labels[shuffled], scores[shuffled]
    ) == model_metrics.calibration_by_decile(labels, scores)
    # 4 rows: one per group in score order (0.1:0, 0.35:1, 0.4:0, 0.8:1), the other six empty
    assert model_metrics.calibration_by_decile(Y, P) == [
        0.0,
        1.0,
        0.0,
        1.0,
        None,
        None,
        None,
        None,
        None,
        None,
    ]


def test_regression_metrics():
    # errors 0, 2, -3: RMSE sqrt((0 + 4 + 9) / 3), MAE (0 + 2 + 3) / 3
    assert model_metrics.rmse([1, 2, 3], [1, 4, 0]) == pytest.approx(math.sqrt(13 / 3))
    assert model_metrics.mae([1, 2, 3], [1, 4, 0]) == pytest.approx(5 / 3)


def test_multiclass_log_loss_and_macro_f1():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.2, 0.2, 0.6]])
    # the true classes get 0.7, 0.4 and 0.6
    hand = -(math.log(0.7) + math.log(0.4) + math.log(0.6)) / 3
    assert model_metrics.multiclass_log_loss([0, 2, 2], probabilities) == pytest.approx(hand)
    # class 0: TP 1 -> F1 1; class 1: TP 0, FP 1, FN 1 -> 0; class 2: TP 1, FP 1, FN 1 -> 2/4
    assert model_metrics.macro_f1([0, 1, 2, 2], [0, 2, 2, 1], classes=3) == pytest.approx((1 + 0 + 0.5) / 3)


def test_expected_roc_auc_is_the_pairwise_expectation_over_fractional_labels():
    p = np.array([0.2, 0.6, 0.9])
    # Each row is positive with probability p. Pairs (i ranked above j): p_i (1 - p_j);
    # a row with itself is a tie worth one half: p_i (1 - p_i) / 2. Over P * N expected pairs.
    above = 0.9 * 0.4 + 0.9 * 0.8 + 0.6 * 0.8
    ties = (0.9 * 0.1 + 0.6 * 0.4 + 0.2 * 0.8) / 2
    hand = (above + ties) / ((0.2 + 0.6 + 0.9) * (0.8 + 0.4 + 0.1))
    assert m.expected_roc_auc(p) == pytest.approx(hand)
    # a tied pair of distinct rows is worth one half too
    tied = np.array([0.5, 0.5])
    assert m.expected_roc_auc(tied) == pytest.approx(0.5)
    assert m.expected_roc_auc(np.array([1.0, 1.0])) is None  # no expected negatives


def test_expected_accuracy():
    # decided negative (0.2): right with 0.8; positive (0.6, 0.9): right with 0.6, 0.9
    assert m.expected_accuracy(np.array([0.2, 0.6, 0.9]), 0.5) == pytest.approx((0.8 + 0.6 + 0.9) / 3)


def test_the_band_covers_the_realized_value_of_calibrated_scores():
    rng = np.random.default_rng(3)
    p = rng.beta(2, 5, 2_000)
    estimates = m.estimate_binary(p, draws=200)
    assert m.estimate_binary(p, draws=200) == estimates  # seeded: the same scores, the same band
    auc = estimates["roc_auc"]
    assert auc.lower < auc.value < auc.upper
    covered = 0
    for seed in range(60):  # labels that really follow the scores
        y = np.random.default_rng(100 + seed).random(p.size) < p
        covered += auc.lower <= model_metrics.roc_auc(y, p) <= auc.upper
    assert covered >= 50  # a 95% band: about 57 of 60
    # miscalibrated scores: the true rate is half the score, so negatives are right more often
    # than the scores claim and the realized accuracy lands above the band
    y = np.random.default_rng(7).random(p.size) < p / 2
    assert model_metrics.accuracy(y, p) > estimates["accuracy"].upper


def test_spearman_and_decision_flips():
    # ranks 1 2 3 4 against 1 3 2 4: d² = 0 + 1 + 1 + 0 = 2 -> 1 - 6 * 2 / (4 * (16 - 1)) = 0.8
    assert m.spearman(np.array([1.0, 2, 3, 4]), np.array([0.1, 0.3, 0.2, 0.4])) == pytest.approx(0.8)
    assert m.spearman(np.array([1.0, 2]), np.array([5.0, 5.0])) is None
    # at 0.5: 0.4 -> 0.6 flips, 0.6 -> 0.6 stays, 0.7 -> 0.3 flips
    assert m.decision_flip_share(np.array([0.4, 0.6, 0.7]), np.array([0.6, 0.6, 0.3]), 0.5) == pytest.approx(
        2 / 3
    )


def test_score_psi_between_days():
    before = np.array([0.1] * 5 + [0.9] * 5)
    after = np.array([0.1] * 8 + [0.9] * 2)
    # two values: shares 0.5/0.5 then 0.8/0.2 -> (0.5-0.8) ln(0.5/0.8) + (0.5-0.2) ln(0.5/0.2)
    hand = (0.5 - 0.8) * math.log(0.5 / 0.8) + (0.5 - 0.2) * math.log(0.5 / 0.2)
    assert m.score_psi(before, after) == pytest.approx(hand)


def test_realized_rows_per_segment_and_the_thresholds():
    segments = np.array(["a", "a", "b", "b", "b", "a"], dtype=object)
    labels = np.array([0, 1, 0, 1, 1, 1])
    scored = Scored(scores=np.array([0.2, 0.7, 0.6, 0.4, 0.9, 0.3]), segments=segments)
    rows = realized_rows("binary", labels, scored, 0.5, "plan", min_segment_rows=3)
    by = {(r["segment"], r["metric"]): r for r in rows}
    assert {s for s, _ in by} == {"all", "plan=a", "plan=b"}
    # segment a: positives 0.7, 0.3 vs negative 0.2 -> both win -> 1.0
    assert by[("plan=a", "roc_auc")]["value"] == pytest.approx(1.0)
    # segment b: positives 0.4, 0.9 vs negative 0.6 -> 0.4 loses, 0.9 wins -> 0.5
    assert by[("plan=b", "roc_auc")]["value"] == pytest.approx(0.5)
    assert by[("all", "brier")]["row_count"] == 6 and by[("plan=b", "accuracy")]["row_count"] == 3
    assert [name for name, _ in segment_masks(segments, "plan", min_rows=4)] == ["all"]
    limits = PerformanceSettings(min_roc_auc=0.8, max_log_loss=0.1)
    reasons = performance_breaches(rows, limits)
    assert len(reasons) == 2 and reasons[0].startswith("roc_auc ") and "below 0.8" in reasons[0]
    assert performance_breaches(rows, PerformanceSettings()) == []


def test_estimated_rows_have_a_band():
    scored = Scored(scores=np.array([0.2, 0.6, 0.9, 0.1, 0.7]))
    rows = estimated_rows(scored, 0.5, None, 1, draws=50)
    assert [r["metric"] for r in rows] == ["roc_auc", "accuracy"]
    accuracy = rows[1]
    assert accuracy["value"] == pytest.approx((0.8 + 0.6 + 0.9 + 0.9 + 0.7) / 5)
    assert accuracy["lower"] <= accuracy["value"] <= accuracy["upper"] and accuracy["row_count"] == 5


def test_stability_counts_shared_new_and_gone_entities():
    row = stability(
        np.array([1, 2, 3, 4]),
        np.array([0.1, 0.6, 0.4, 0.8]),
        np.array([2, 3, 4, 5, 6]),
        np.array([0.7, 0.55, 0.9, 0.2, 0.3]),
        threshold=0.5,
    )
    # shared 2, 3, 4: 0.6 -> 0.7 stays, 0.4 -> 0.55 flips, 0.8 -> 0.9 stays; ranks 2 1 3 vs 2 1 3
    assert (row["shared_entities"], row["new_entities"], row["gone_entities"]) == (3, 2, 1)
    assert row["decision_flip_share"] == pytest.approx(1 / 3)
    assert row["rank_correlation"] == pytest.approx(1.0)
    limits = StabilitySettings(max_decision_flip_share=0.2, min_rank_correlation=0.5)
    assert stability_breaches(row, limits) == ["decision flip share 0.3333 above 0.2"]
    assert (
        stability(np.array([1]), np.array([0.1]), np.array([1]), np.array([5.0]), None)["decision_flip_share"]
        is None
    )


def test_metrics_agree_with_scikit_learn_and_scipy_on_random_data():
    from scipy.stats import spearmanr
    from sklearn import metrics

    rng = np.random.default_rng(11)
    p = np.round(rng.random(500), 2)  # rounded: many ties
    y = (rng.random(500) < p).astype(int)
    assert model_metrics.roc_auc(y, p) == pytest.approx(metrics.roc_auc_score(y, p))
    assert model_metrics.log_loss(y, p) == pytest.approx(metrics.log_loss(y, p))
    assert model_metrics.brier(y, p) == pytest.approx(metrics.brier_score_loss(y, p))
    probabilities = rng.dirichlet([1, 1, 1], 500)
    classes = rng.integers(0, 3, 500)
    predicted = probabilities.argmax(axis=1)
    assert model_metrics.multiclass_log_loss(classes, probabilities) == pytest.approx(
        metrics.log_loss(classes, probabilities)
    )
    assert model_metrics.macro_f1(classes, predicted, 3) == pytest.approx(
        metrics.f1_score(classes, predicted, average="macro")
    )
    other = np.round(p + rng.normal(0, 0.2, 500), 1)
    assert m.spearman(p, other) == pytest.approx(spearmanr(p, other).statistic)


def test_multiclass_realized_rows():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]])
    scored = Scored(
        scores=probabilities.max(axis=1), probabilities=probabilities, predicted=np.array([0, 1, 2, 1])
    )
    rows = realized_rows("multiclass", np.array([0, 2, 2, 1]), scored, 0.5, None, 1, classes=3)
    values = {r["metric"]: r["value"] for r in rows}
    # true classes get 0.7, 0.4, 0.6, 0.4; predictions 0 1 2 1 against 0 2 2 1: 3 of 4 right;
    # F1 class 0: 1; class 1: TP 1, FP 1 -> 2/3; class 2: TP 1, FN 1 -> 2/3
    assert values["log_loss"] == pytest.approx(-(math.log(0.7) + 2 * math.log(0.4) + math.log(0.6)) / 4)
    assert values["accuracy"] == pytest.approx(0.75)
    assert values["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert {r["row_count"] for r in rows} == {4}


def test_named_metric_bundles_keep_their_stored_names_and_one_epsilon():
    labels, scores = np.array([0, 1, 1, 0]), np.array([0.0, 1.0, 0.7, 0.2])
    binary = model_metrics.classification_metrics(labels, scores)
    assert set(binary) == {"rows", "auc", "logloss", "calibration_error"}
    assert binary["auc"] == 1.0 and binary["rows"] == 4
    assert binary["logloss"] == round(model_metrics.log_loss(labels, scores), 6)
    assert math.isnan(model_metrics.classification_metrics(np.array([1, 1]), np.array([0.2, 0.3]))["auc"])
    regression = model_metrics.regression_metrics(np.array([1.0, 2.0]), np.array([2.0, 2.0]))
    assert regression == {"rows": 2, "rmse": round(math.sqrt(0.5), 6), "mae": 0.5, "bias": 0.5}
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    multiclass = model_metrics.multiclass_metrics(np.array([0, 1]), probabilities)
    assert multiclass == {
        "rows": 2,
        "logloss": round(model_metrics.multiclass_log_loss(np.array([0, 1]), probabilities), 6),
        "accuracy": 0.5,
    }
