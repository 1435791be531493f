"""The vector-leaf Saabas copy gives XGBoost's own approximate contributions, at predict cost."""

from __future__ import annotations

import numpy as np
import pytest

from batchscore.models.saabas import predict_contributions, vector_leaf_booster


def trained(objective: str, **params: object):  # type: ignore[no-untyped-def]
    import xgboost as xgb

    rng = np.random.default_rng(3)
    x = rng.normal(size=(4_000, 6)).astype(np.float32)
    x[::7, 2] = np.nan  # missing values take each split's default direction
    y = x[:, 0] + x[:, 1] * x[:, 3] + rng.normal(0, 0.3, len(x))
    label = (y > 0).astype(int) if objective == "binary:logistic" else np.floor(np.clip(y, -1, 1) + 1)
    base = {"objective": objective, "max_depth": 5, "eta": 0.2, "nthread": 1, **params}
    return xgb.train(base, xgb.DMatrix(x, label=label), num_boost_round=40), x


@pytest.mark.parametrize("objective", ["binary:logistic", "reg:squarederror"])
def test_vector_leaf_contributions_equal_pred_contribs_and_sum_to_the_margin(objective):
    import xgboost as xgb

    booster, x = trained(objective)
    vector = vector_leaf_booster(booster, x)
    assert vector is not None
    rows = np.random.default_rng(4).normal(size=(1_000, 6)).astype(np.float32)
    rows[::3, 2] = np.nan
    expected = booster.predict(xgb.DMatrix(rows), pred_contribs=True, approx_contribs=True)
    got = predict_contributions(vector, rows, 1)
    assert got.shape == (1_000, 7)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    margin = booster.predict(xgb.DMatrix(rows), output_margin=True)
    np.testing.assert_allclose(got.sum(axis=1), margin, atol=1e-4)


def test_models_it_does_not_fit_give_none():
    booster, x = trained("multi:softprob", num_class=3)
    assert vector_leaf_booster(booster, x) is None
    linear, x = trained("reg:squarederror", booster="gblinear")
    assert vector_leaf_booster(linear, x) is None


def test_a_copy_too_large_is_not_built(monkeypatch):
    from batchscore.models import saabas

    booster, x = trained("reg:squarederror")
    monkeypatch.setattr(saabas, "MAX_LEAF_VALUES", 100)
    assert vector_leaf_booster(booster, x) is None
