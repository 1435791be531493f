"""Drift statistics: PSI agrees with Evidently's, flags real shifts, samples deterministically."""

import json

import numpy as np
import pandas as pd
import pytest

from batchscore.drift import compute_drift, deterministic_sample, psi, write_drift_report


def evidently_psi(a, b):
    from evidently.legacy.calculations.stattests.psi import _psi
    from evidently.legacy.core import ColumnType

    clean = lambda x: pd.Series(x).replace([np.inf, -np.inf], np.nan).dropna()  # noqa: E731
    return _psi(clean(a), clean(b), ColumnType.Numerical, 0.1)[0]


RNG = np.random.default_rng(11)
CASES = {
    "same distribution": (RNG.normal(size=4000), RNG.normal(size=3000)),
    "shifted mean": (RNG.normal(size=4000), RNG.normal(1.0, 1, size=3000)),
    "few distinct values": (RNG.integers(0, 5, 2000).astype(float), RNG.integers(0, 7, 2500).astype(float)),
    "with NaN and inf": (
        np.where(RNG.random(3000) < 0.1, np.nan, RNG.gamma(2, 3, 3000)),
        np.where(RNG.random(3000) < 0.05, np.inf, RNG.gamma(2, 4, 3000)),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_psi_matches_evidently(case):
    a, b = CASES[case]
    assert psi(a, b) == pytest.approx(evidently_psi(a, b), abs=1e-9)


def test_psi_detects_shift_and_not_noise():
    a, b = CASES["same distribution"]
    assert psi(a, b) < 0.1
    a, b = CASES["shifted mean"]
    assert psi(a, b) > 0.2


def test_psi_edge_cases():
    assert psi(np.ones(100), np.ones(50)) == 0.0
    assert np.isnan(psi(np.full(10, np.nan), np.ones(10)))


def test_compute_drift_thresholds_and_prediction():
    n = 5000
    ref = pd.DataFrame({"a": RNG.normal(size=n), "b": RNG.normal(size=n), "score": RNG.random(n)})
    cur = pd.DataFrame(
        {"a": RNG.normal(size=n), "b": RNG.normal(0.8, 1, size=n), "score": RNG.random(n) ** 2}
    )
    result = compute_drift(
        ref, cur, ["a", "b"], thresholds={"a": 10.0}, default_threshold=0.2, prediction_column="score"
    )
    by_name = {f.feature: f for f in result.features}
    assert by_name["a"].threshold == 10.0 and not by_name["a"].drifted
    assert by_name["b"].drifted and by_name["b"].statistic > 0.2
    assert result.drifted_features() == ["b"] and result.drifted_share == 0.5
    assert result.prediction is not None and result.prediction.drifted
    assert json.dumps(result.to_dict())


def test_deterministic_sample_ignores_row_order():
    df = pd.DataFrame({"k": np.arange(10_000), "v": RNG.random(10_000)})
    first = deterministic_sample(df, 500, "k")
    again = deterministic_sample(df.sample(frac=1, random_state=1), 500, "k")
    assert len(first) == 500
    assert first["k"].tolist() == again["k"].tolist()
    assert deterministic_sample(df, 500, "k", seed=1)["k"].tolist() != first["k"].tolist()


def test_evidently_report_written(tmp_path):
    ref = pd.DataFrame({"a": RNG.normal(size=500), "score": RNG.random(500)})
    cur = pd.DataFrame({"a": RNG.normal(1, 1, size=500), "score": RNG.random(500)})
    html, js = write_drift_report(ref, cur, ["a"], tmp_path / "out", title="t", prediction_column="score")
    assert html.stat().st_size > 10_000
    body = js.read_text()
    assert json.loads(body) and "a" in body and "score" in body
