"""Retraining: point-in-time training sets, the promotion gate's rules, shadow evidence."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from batchscore.examples.seed import SeedSpec, seed_lake
from batchscore.model_metrics import calibration_error
from batchscore.models.promotion import NO_CHAMPION, PROMOTE, REJECT, promotion_decision
from batchscore.models.training import build_training_set
from batchscore.settings import PromotionSettings
from batchscore.storage.lake import Lake
from batchscore.storage.warehouse import open_warehouse
from jobs import retrain

END = date(2026, 11, 10)


def test_training_set_is_point_in_time_with_no_leakage_from_later_days(spark, churn_settings):
    lake = Lake(churn_settings.platform.lake_url)
    seed_lake(lake, SeedSpec(rows=300, seed=3, label_lag_days=3), END, 8)
    start = date(2026, 11, 5)
    data = build_training_set(churn_settings, END, spark, start=start)
    frame = data.frame

    assert data.label_dates == [date(2026, 11, 5), date(2026, 11, 6), date(2026, 11, 7)], (
        "labels of later days have not landed by the cut-off; earlier ones are before `start`"
    )
    assert sorted(frame["dt"].unique()) == data.label_dates
    leaked = 0
    for day in data.label_dates:
        same_day = pd.read_parquet(lake.raw_partition("customers", day)).set_index("customer_id")
        next_day = pd.read_parquet(lake.raw_partition("customers", day + timedelta(days=1))).set_index(
            "customer_id"
        )
        rows = frame[frame["dt"] == day].set_index("customer_id")
        assert len(rows) == len(same_day)
        np.testing.assert_allclose(
            rows["monthly_charges"], same_day.loc[rows.index, "monthly_charges"], rtol=1e-6
        )
        np.testing.assert_allclose(
            rows["tenure_months"], same_day.loc[rows.index, "tenure_months"], rtol=1e-6
        )
        np.testing.assert_allclose(
            rows["sessions_last_30d"], same_day.loc[rows.index, "sessions_last_30d"], rtol=1e-6
        )
        leaked += int(
            (~np.isclose(rows["sessions_last_30d"], next_day.loc[rows.index, "sessions_last_30d"])).sum()
        )
    assert leaked > 0, "the next day's values differ, so reading them would have been caught"


def evaluation(challenger_auc: float, champion_auc: float, **overrides) -> dict:
    base = {
        "holdout_rows": 1000,
        "challenger": {
            "version": 2,
            "auc": challenger_auc,
            "logloss": 0.40,
            "segments": {"s=0": {"auc": challenger_auc}, "s=1": {"auc": challenger_auc}},
            "rows_per_s": 500_000,
            "artifact_bytes": 1_000_000,
        },
        "champion": {
            "version": 1,
            "auc": champion_auc,
            "logloss": 0.45,
            "segments": {"s=0": {"auc": champion_auc}, "s=1": {"auc": champion_auc}},
        },
        "shadow": None,
    }
    for key, value in overrides.items():
        base["challenger"][key] = value
    return base


CHECKS = {"holdout_rows_at_least_min": True, "both_classes_in_train": True}


def decide(evaluation_: dict, checks: dict, budget: PromotionSettings) -> tuple[str, list[str]]:
    """The promotion rule as the retrain job's promotion gate applies it."""
    return promotion_decision(
        "binary",
        evaluation_["challenger"],
        evaluation_["champion"],
        budget,
        checks=checks,
        shadow=evaluation_["shadow"],
    )


def test_promotion_needs_the_margin_and_every_budget():
    budget = PromotionSettings(min_auc_gain=0.01, segment_auc_tolerance=0.02, min_rows_per_s=100_000)
    assert decide(evaluation(0.80, 0.78), CHECKS, budget) == (PROMOTE, [])
    decision, against = decide(evaluation(0.785, 0.78), CHECKS, budget)
    assert decision == REJECT and against == ["AUC gain +0.0050 < required +0.0100"]
    slow = evaluation(0.80, 0.78, rows_per_s=50_000, artifact_bytes=10**9)
    assert decide(slow, CHECKS, budget)[1] == [
        "throughput 50,000 rows/s < budget 100,000",
        "artifacts 1,000,000,000 B > budget 50,000,000",
    ]
    failed = decide(evaluation(0.80, 0.78), {**CHECKS, "both_classes_in_train": False}, budget)
    assert failed == (REJECT, ["data gate failed: both_classes_in_train"])


def test_without_a_champion_budgets_and_checks_still_apply():
    budget = PromotionSettings(min_rows_per_s=100_000)
    first = {**evaluation(0.80, 0.78), "champion": None}
    assert decide(first, CHECKS, budget) == (PROMOTE, [NO_CHAMPION])
    slow = {**evaluation(0.80, 0.78, rows_per_s=50_000), "champion": None}
    assert decide(slow, CHECKS, budget) == (REJECT, ["throughput 50,000 rows/s < budget 100,000"])


def test_one_regressing_segment_blocks_promotion_beyond_the_tolerance():
    budget = PromotionSettings(min_auc_gain=0.01, segment_auc_tolerance=0.02)
    regressing = evaluation(0.80, 0.78)
    regressing["challenger"]["segments"]["s=1"] = {"auc": 0.75}
    decision, against = decide(regressing, CHECKS, budget)
    assert decision == REJECT
    assert against == ["segment s=1: AUC 0.7500 vs champion 0.7800 (tolerance 0.02)"]
    regressing["challenger"]["segments"]["s=1"] = {"auc": 0.765}
    assert decide(regressing, CHECKS, budget)[0] == PROMOTE


def test_labelled_shadow_scores_can_veto_but_only_with_enough_rows():
    budget = PromotionSettings(min_auc_gain=0.0, min_shadow_rows=500)
    shadow = {"labelled_rows": 800, "challenger": {"auc": 0.70}, "champion": {"auc": 0.74}}
    vetoed = {**evaluation(0.80, 0.78), "shadow": shadow}
    assert decide(vetoed, CHECKS, budget)[1] == ["shadow scores: AUC 0.7000 < champion's 0.7400"]
    few = {**evaluation(0.80, 0.78), "shadow": {**shadow, "labelled_rows": 100}}
    assert decide(few, CHECKS, budget)[0] == PROMOTE


def test_shadow_evidence_is_skipped_without_the_table_and_read_when_present(churn_settings):
    assert retrain.shadow_evidence(churn_settings, 2) is None
    lake = Lake(churn_settings.platform.lake_url)
    day = date(2026, 11, 3)
    n = 1200
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, n)
    ids = np.arange(n, dtype=np.int64)
    partition = lake.raw_partition("churn_labels", day + timedelta(days=3))
    partition.mkdir(parents=True)
    pd.DataFrame({"customer_id": ids, "label_date": [day] * n, "churned": label.astype(np.int8)}).to_parquet(
        partition / "part-0.parquet"
    )
    (partition / "_SUCCESS").touch()
    good = np.clip(label * 0.6 + rng.random(n) * 0.4, 0, 1)
    noise = rng.random(n)
    warehouse = open_warehouse(churn_settings.platform.warehouse_url)
    warehouse.migrate()
    import duckdb

    with duckdb.connect(str(warehouse.path)) as con:
        for table, version, scores in (("shadow_scores_churn", 2, good), ("scores_churn", 1, noise)):
            con.execute(
                f"CREATE TABLE {table} (customer_id BIGINT, run_date DATE, pipeline VARCHAR, model_name VARCHAR, "
                "model_version INTEGER, score DOUBLE, run_id VARCHAR)"
            )
            con.executemany(
                f"INSERT INTO {table} VALUES (?, ?, 'churn', 'churn_xgb', ?, ?, 'r')",
                [[int(i), day, version, float(s)] for i, s in zip(ids, scores, strict=True)],
            )
    evidence = retrain.shadow_evidence(churn_settings, 2)
    assert evidence is not None and evidence["labelled_rows"] == n
    assert evidence["challenger"]["auc"] > 0.95 and evidence["champion"]["auc"] == pytest.approx(
        0.5, abs=0.06
    )


def test_calibration_error_is_zero_when_scores_match_rates():
    labels = np.array([0, 0, 0, 1] * 250)
    assert calibration_error(labels, np.full(1000, 0.25)) == pytest.approx(0.0)
    assert calibration_error(labels, np.full(1000, 0.75)) == pytest.approx(0.5)
