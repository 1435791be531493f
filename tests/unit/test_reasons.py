"""Reason codes: contributions, the top k per row, and the score stage's reasons partition."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchscore.models.inference import XGBoostScorer
from batchscore.models.reasons import (
    ExplainSpec,
    contributions,
    reasons_batch,
    top_k,
)
from batchscore.models.registry import ModelRegistry
from batchscore.settings import ConfigError
from batchscore.settings.pipeline import ExplainSettings
from batchscore.storage.lake import REASONS_MANIFEST, Lake, partition_checksum
from tests.unit.test_scoring_engine import (
    DAY,
    KEY,
    NAMES,
    features_table,
    lake,  # noqa: F401  (fixture)
    models,  # noqa: F401  (fixture)
    with_inference,
    write_features_partition,
)

RUN_DATE = date(2026, 11, 21)


def one_split_model(tmp_path):
    """One tree, one split on x0 at 0.5: contributions can be computed by hand."""
    import xgboost as xgb

    x = np.array([[0.0, 5.0], [0.0, 6.0], [0.0, 7.0], [1.0, 5.0], [1.0, 9.0]], dtype=np.float32)
    y = np.array([0, 0, 1, 1, 1])
    booster = xgb.train(
        {
            "objective": "binary:logistic",
            "max_depth": 1,
            "eta": 1.0,
            "lambda": 0.0,
            "min_child_weight": 0,
            "base_score": 0.5,
        },
        xgb.DMatrix(x, label=y),
        num_boost_round=1,
    )
    path = tmp_path / "model.json"
    booster.save_model(path)
    return XGBoostScorer(str(path), "cpu"), x, json.loads(path.read_text())


def test_contributions_match_a_hand_computation_and_sum_to_the_margin(tmp_path):
    scorer, x, model = one_split_model(tmp_path)
    tree = model["learner"]["gradient_booster"]["model"]["trees"][0]
    assert tree["split_indices"][0] == 0  # the split is on x0 (x1 carries no signal here)
    left, right = tree["left_children"][0], tree["right_children"][0]
    assert left > 0 and right > 0  # the root split: one tree of two leaves
    weights, hess = tree["base_weights"], tree["sum_hessian"]
    # Expected value of the tree: the hessian-weighted mean of its leaves (xgboost's node mean).
    mean = (weights[left] * hess[left] + weights[right] * hess[right]) / (hess[left] + hess[right])
    leaf = np.where(x[:, 0] < tree["split_conditions"][0], weights[left], weights[right])
    scores = scorer.predict(x, 1)
    for approx in (True, False):
        got = contributions(scorer, x, scores, approx=approx, threads=1)
        assert got.shape == (5, 3)
        np.testing.assert_allclose(got[:, 0], leaf - mean, atol=1e-6)  # x0's contribution
        np.testing.assert_allclose(got[:, 1], 0.0, atol=1e-7)  # x1 is never split on
        np.testing.assert_allclose(got[:, 2], mean, atol=1e-6)  # bias: base margin 0 + tree mean
        margin = np.log(scores / (1 - scores))
        np.testing.assert_allclose(got.sum(axis=1), margin, atol=1e-5)


def test_top_k_orders_by_absolute_contribution_and_excludes_the_bias():
    contribs = np.array(
        [
            [0.1, -0.9, 0.3, 0.0, 5.0],  # bias 5.0 is never a reason
            [0.2, 0.2, -0.2, 0.1, -1.0],  # ties keep the lower feature index first
        ]
    )
    assert top_k(contribs, 3).tolist() == [[1, 2, 0], [0, 1, 2]]
    assert top_k(contribs, 4).tolist() == [[1, 2, 0, 3], [0, 1, 2, 3]]
    assert top_k(contribs, 9).shape == (2, 4)  # never more than the features


def test_reasons_batch_has_k_rows_per_row_with_inputs_and_contributions():
    matrix = np.array([[1.0, 2.0, np.nan], [4.0, 5.0, 6.0]], dtype=np.float32)
    contribs = np.array([[0.5, -0.1, 2.0, 0.3], [-3.0, 0.2, 0.1, 0.0]])
    keys = pa.array([10, 20], pa.int64())
    batch = reasons_batch(keys, matrix, contribs, 2, ["a", "b", "c"], 4, RUN_DATE, "id", pa.int64())
    rows = batch.to_pylist()
    assert [(r["id"], r["rank"], r["feature"], r["contribution"]) for r in rows] == [
        (10, 1, "c", 2.0),
        (10, 2, "a", 0.5),
        (20, 1, "a", -3.0),
        (20, 2, "b", 0.2),
    ]
    assert np.isnan(rows[0]["value"]) and rows[1]["value"] == 1.0 and rows[3]["value"] == 5.0
    assert {r["model_version"] for r in rows} == {4} and {r["run_date"] for r in rows} == {RUN_DATE}


def test_explain_settings_are_checked():
    with pytest.raises(ValueError):
        ExplainSettings(top_k=0)
    assert ExplainSettings(top_k=3).method == "approx"


@pytest.mark.integration
def test_score_stage_writes_top_k_reasons_beside_the_scores(spark, churn_settings, lake, monkeypatch):  # noqa: F811
    from batchscore.models import scoring_driver
    from jobs import score as job

    monkeypatch.setattr(scoring_driver, "MAX_TASK_ROWS", 500)
    table = features_table(2_000, seed=5)
    write_features_partition(lake, table)
    assert churn_settings.pipeline.explain is not None  # churn.yaml enables reason codes
    result = job.run(churn_settings, DAY, 1, spark)
    scores_path = lake.scores_partition("churn", 1, DAY)
    reasons_path = lake.reasons_partition("churn", 1, DAY)
    assert Lake.is_complete(reasons_path) and result.details["reasons"]["rows"] == 3 * 2_000
    reasons = pq.read_table(reasons_path).sort_by([(KEY, "ascending"), ("rank", "ascending")])
    assert reasons.num_rows == 3 * 2_000
    assert reasons.column("rank").to_pylist()[:6] == [1, 2, 3, 1, 2, 3]
    manifest = json.loads((reasons_path / REASONS_MANIFEST).read_text())
    assert manifest["scores_checksum"] == partition_checksum(scores_path) and manifest["top_k"] == 3
    assert set(manifest["mean_abs_contribution"]) == set(NAMES)

    # Same contributions as xgboost's in one process, and the same features picked.
    version = ModelRegistry(lake, "churn_xgb").get(1)
    scorer = XGBoostScorer(str(version.artifact("model.ubj")), "cpu")
    from batchscore.models.inference import feature_matrix

    ordered = table.sort_by(KEY)
    matrix = feature_matrix(ordered, NAMES)
    import xgboost as xgb

    # xgboost's own pred_contribs, not the vector-leaf copy the stage uses
    expected = scorer.booster.predict(
        xgb.DMatrix(matrix, missing=np.nan), pred_contribs=True, approx_contribs=True, validate_features=False
    )
    picked = top_k(expected, 3)
    got_features = np.array(reasons.column("feature").to_pylist()).reshape(-1, 3)
    assert (got_features == np.array(NAMES)[picked]).all()
    got = np.array(reasons.column("contribution").to_pylist()).reshape(-1, 3)
    np.testing.assert_allclose(got, np.take_along_axis(expected, picked, axis=1), atol=1e-5)
    means = np.abs(expected[:, :-1]).mean(axis=0)
    np.testing.assert_allclose([manifest["mean_abs_contribution"][n] for n in NAMES], means, rtol=1e-5)


@pytest.mark.integration
def test_reasons_are_refused_clearly_for_onnx_and_for_too_many(spark, churn_settings, lake):  # noqa: F811
    from jobs import score as job

    write_features_partition(lake, features_table(200, seed=6))
    with pytest.raises(ConfigError, match="need an XGBoost booster"):
        job.run(with_inference(churn_settings, backend="onnx"), DAY, 1, spark)
    too_many = with_inference(churn_settings, explain=ExplainSettings(top_k=len(NAMES) + 1))
    with pytest.raises(ConfigError, match=f"more than the {len(NAMES)} features"):
        job.run(too_many, DAY, 1, spark)
    assert not lake.reasons_partition("churn", 1, DAY).exists()
    assert ExplainSpec(3).approx


def test_attribution_rows_compare_with_the_reference_and_never_count_in_the_gate(churn_settings):
    from batchscore.quality.attribution import attribution_rows, is_shifted
    from batchscore.storage.warehouse import open_warehouse
    from jobs.gate import recorded_drift

    assert not is_shifted(0.3, 0.2) and is_shifted(0.5, 0.2) and is_shifted(0.05, 0.2)
    assert not is_shifted(0.0, 0.0) and is_shifted(0.1, 0.0)
    rows = attribution_rows({"b": 0.5, "a": 0.1}, {"a": 0.1, "b": 0.2})
    assert [(r["feature"], r["method"], r["threshold"], r["drifted"]) for r in rows] == [
        ("attribution:a", "attribution", 0.1, False),
        ("attribution:b", "attribution", 0.2, True),
    ]
    features = [
        {"feature": "tenure_months", "method": "psi", "statistic": 0.5, "threshold": 0.2, "drifted": True},
        {"feature": "age", "method": "psi", "statistic": 0.01, "threshold": 0.2, "drifted": False},
    ]
    warehouse = open_warehouse(churn_settings.platform.warehouse_url)
    warehouse.replace_drift_metrics("churn", DAY, 1, features + rows)
    assert warehouse.query("SELECT count(*) FROM drift_metrics WHERE method = 'attribution'") == [(2,)]
    summary = recorded_drift(churn_settings, DAY, 1)
    assert summary.drifted_share == 0.5 and summary.drifted_features == ("tenure_months",)


def test_reference_attribution_is_the_mean_absolute_contribution(tmp_path):
    import pandas as pd

    from batchscore.models.reasons import reference_attribution

    scorer, x, _ = one_split_model(tmp_path)
    frame = pd.DataFrame(x, columns=["a", "b"])
    got = reference_attribution(str(tmp_path / "model.json"), frame, ["a", "b"], approx=True, task="binary")
    expected = np.abs(contributions(scorer, x, scorer.predict(x, 1), True, 1)[:, :2]).mean(axis=0)
    assert got == pytest.approx({"a": expected[0], "b": 0.0}) and got["a"] > 0


def test_multiclass_reasons_explain_the_predicted_class(tmp_path):
    import xgboost as xgb

    rng = np.random.default_rng(8)
    x = rng.normal(size=(600, 4)).astype(np.float32)
    y = np.digitize(x[:, 0] + x[:, 1], [-0.5, 0.5])
    booster = xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "nthread": 1}, xgb.DMatrix(x, y), 10
    )
    booster.save_model(tmp_path / "m.ubj")
    scorer = XGBoostScorer(str(tmp_path / "m.ubj"), "cpu", "multiclass")
    scores = scorer.predict(x, 1)
    got = contributions(scorer, x, scores, approx=True, threads=1)
    per_class = booster.predict(xgb.DMatrix(x), pred_contribs=True, approx_contribs=True)  # (rows, 3, 5)
    predicted = np.argmax(scores, axis=1)
    assert len(set(predicted.tolist())) == 3
    np.testing.assert_allclose(got, per_class[np.arange(600), predicted], atol=1e-6)
    margins = booster.predict(xgb.DMatrix(x), output_margin=True)
    np.testing.assert_allclose(got.sum(axis=1), margins[np.arange(600), predicted], atol=1e-4)
