"""Drift statistics: PSI agrees with Evidently's, flags real shifts, samples deterministically."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from batchscore.quality.drift import (
    compute_drift,
    deterministic_sample,
    is_drifted,
    ks_pvalue,
    psi,
    wasserstein_norm,
    write_drift_report,
)


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


def evidently_values(report_json: str) -> tuple[dict[str, float], float]:
    """Per-column drift values and the drifted-columns count from an Evidently 0.7 snapshot."""
    metrics = json.loads(report_json)["metrics"]
    values = {
        m["config"]["column"]: m["value"] for m in metrics if m["config"]["type"].endswith("ValueDrift")
    }
    count = next(m["value"]["count"] for m in metrics if m["config"]["type"].endswith("DriftedColumnsCount"))
    return values, count


def test_report_and_gate_agree_on_the_sample_with_every_method(tmp_path):
    n = 3000
    ref = pd.DataFrame(
        {
            "k": np.arange(n),
            "a": RNG.normal(size=n),
            "b": RNG.normal(size=n),
            "c": RNG.integers(0, 5, size=n).astype(float),
            "score": RNG.random(n),
        }
    )
    cur = pd.DataFrame(
        {
            "k": np.arange(n),
            "a": RNG.normal(0.3, 1, size=n),
            "b": RNG.normal(0.3, 1.2, size=n),
            "c": RNG.integers(0, 6, size=n).astype(float),
            "score": RNG.random(n) ** 1.3,
        }
    )
    methods = {"a": "ks", "b": "wasserstein", "c": "psi", "score": "psi"}
    thresholds = {"a": 0.05, "b": 0.1, "c": 0.05, "score": 0.2}
    ref_s, cur_s = deterministic_sample(ref, 1000, "k"), deterministic_sample(cur, 1000, "k")
    gate = compute_drift(
        ref_s, cur_s, ["a", "b", "c"], methods=methods, thresholds=thresholds, prediction_column="score"
    )
    _, js = write_drift_report(
        ref_s,
        cur_s,
        ["a", "b", "c"],
        tmp_path,
        title="t",
        prediction_column="score",
        methods=methods,
        thresholds=thresholds,
    )
    values, count = evidently_values(js.read_text())
    measured = {f.feature: f for f in gate.all_metrics()}
    assert set(values) == set(measured) == {"a", "b", "c", "score"}
    for column, value in values.items():
        assert measured[column].method == methods[column]
        assert measured[column].statistic == pytest.approx(value, rel=1e-9, abs=1e-12), column
    assert count == sum(f.drifted for f in measured.values())
    assert measured["a"].drifted and measured["b"].drifted, "the shifted columns drift"


def test_ks_and_wasserstein_match_scipy_definitions():
    from scipy.stats import ks_2samp, wasserstein_distance

    a, b = RNG.normal(size=2000), RNG.normal(0.2, 1, size=3000)
    b[:10] = np.nan
    assert ks_pvalue(a, b) == ks_2samp(a, b[10:])[1]
    for shift, decimals in ((0.0, 6), (0.03, 6), (0.02, 1)):  # large samples take the native path
        big_a = np.round(RNG.normal(size=12_000), decimals)
        big_b = np.round(RNG.normal(shift, 1, size=40_000), decimals)
        assert ks_pvalue(big_a, big_b) == ks_2samp(big_a, big_b)[1], (shift, decimals)
    assert wasserstein_norm(a, b) == pytest.approx(wasserstein_distance(a, b[10:]) / np.std(a))
    assert is_drifted("ks", 0.01, 0.05) and not is_drifted("ks", 0.2, 0.05)
    assert is_drifted("wasserstein", 0.2, 0.1) and not is_drifted("psi", float("nan"), 0.1)


def test_drift_within_one_segment_is_found_even_when_the_whole_is_calm():
    n = 20_000
    segment = RNG.integers(0, 2, size=n)
    ref = pd.DataFrame({"x": RNG.normal(size=n), "seg": segment, "score": RNG.random(n)})
    cur = ref.copy()
    small = cur["seg"] == 1
    cur.loc[small, "x"] = RNG.normal(1.5, 1, size=int(small.sum()))
    cur = cur[(cur["seg"] == 0) | (RNG.random(n) < 0.15)]  # segment 1 is a small share today
    result = compute_drift(
        ref, cur, ["x"], prediction_column="score", segment_column="seg", min_segment_rows=100
    )
    segments = {s.segment: s for s in result.segments}
    assert set(segments) == {"seg=0", "seg=1"}
    assert segments["seg=1"].drifted_features() == ["x"] and segments["seg=1"].features[0].statistic > 0.5
    assert segments["seg=0"].drifted_features() == []
    assert {f.segment for f in result.all_metrics()} == {"all", "seg=0", "seg=1"}
    skipped = compute_drift(ref, cur, ["x"], segment_column="seg", min_segment_rows=5000)
    assert [s.segment for s in skipped.segments] == ["seg=0"], "segments too small are not judged"


def strip_ids(page: str) -> str:
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}", "ID", page)


def test_skipping_the_unshown_value_drift_widgets_changes_neither_html_nor_json(tmp_path):
    ref = pd.DataFrame(
        {"a": RNG.normal(size=800), "b": RNG.integers(0, 4, 800) * 1.0, "score": RNG.random(800)}
    )
    cur = pd.DataFrame(
        {"a": RNG.normal(0.5, 1, 800), "b": RNG.integers(0, 5, 800) * 1.0, "score": RNG.random(800)}
    )
    pages = {}
    for skip in (False, True):
        html, js = write_drift_report(
            ref,
            cur,
            ["a", "b"],
            tmp_path / str(skip),
            title="t",
            prediction_column="score",
            skip_unshown_widgets=skip,
        )
        pages[skip] = (strip_ids(html.read_text()), js.read_text())
    assert pages[True][1] == pages[False][1], "the JSON holds values only"
    assert pages[True][0] == pages[False][0], "DataDriftPreset.render shows none of ValueDrift's widgets"
    assert "batchscore-sample-note" not in pages[True][0], "no note without a sample"


def test_the_report_says_it_is_built_from_a_sample_and_the_gate_from_all_rows(churn_settings, tmp_path):
    from jobs.drift import report

    drift = churn_settings.pipeline.drift.model_copy(update={"report_sample_rows": 300})
    settings = churn_settings.model_copy(
        update={"pipeline": churn_settings.pipeline.model_copy(update={"drift": drift})}
    )
    key = settings.pipeline.dataset.entity_key
    ref = pd.DataFrame({key: np.arange(1000), "a": RNG.normal(size=1000), "score": RNG.random(1000)})
    cur = pd.DataFrame({key: np.arange(2000), "a": RNG.normal(size=2000), "score": RNG.random(2000)})
    html, js, sample = report(settings, ref, cur, ["a"], tmp_path, "t", {}, {})
    assert {k: v for k, v in sample.items() if k != "note"} == {
        "reference_rows": 300,
        "reference_total_rows": 1000,
        "current_rows": 300,
        "current_total_rows": 2000,
    }
    assert "300 of 1,000 reference rows" in sample["note"] and "300 of 2,000 current rows" in sample["note"]
    assert "the drift gate decides on statistics over all rows" in sample["note"]
    assert sample["note"] in html.read_text()
    assert json.loads(js.read_text())["batchscore_sample"] == sample


def test_scores_join_the_features_as_a_one_to_one_left_merge():
    from jobs.drift import with_scores

    features = pd.DataFrame({"k": [5, 3, 9, 1], "a": [1.0, 2.0, 3.0, 4.0]})
    keys, scores = np.array([1, 9, 5, 7]), np.array([0.1, 0.9, 0.5, 0.7])
    joined = with_scores(features.copy(), keys, scores, "k")
    merged = features.merge(
        pd.DataFrame({"k": keys, "score": scores}), on="k", how="left", validate="one_to_one"
    )
    pd.testing.assert_frame_equal(joined, merged)
    assert np.isnan(joined["score"].iloc[1]), "a row without a score gets NaN"
    with pytest.raises(pd.errors.MergeError):
        with_scores(features, np.array([1, 1]), np.array([0.1, 0.2]), "k")
    with pytest.raises(pd.errors.MergeError):
        with_scores(pd.concat([features, features]), keys, scores, "k")
