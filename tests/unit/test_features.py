"""The shared feature code on tiny inline frames: values, types, nulls, and the content hash."""

import dataclasses
import math
from datetime import date

import pytest

from features import Feature, FeatureSet, compute_features, load_feature_set
from features.churn import FEATURE_SET

pytestmark = pytest.mark.usefixtures("spark")


def raw_row(**overrides):
    row = {
        "customer_id": 7,
        "as_of_date": date(2026, 11, 21),
        "signup_date": date(2024, 1, 1),
        "age": 40,
        "gender": "F",
        "region": "west",
        "plan": "premium",
        "contract": "month-to-month",
        "payment_method": "check",
        "tenure_months": 10,
        "monthly_charges": 50.0,
        "total_charges": 400.0,
        "num_support_tickets": 2,
        "avg_session_minutes": 12.5,
        "sessions_last_30d": 20,
        "days_since_last_login": 3,
        "num_devices": 2,
        "data_usage_gb": 10.0,
        "late_payments_12m": 1,
        "discount_pct": 5.0,
        "has_streaming": True,
        "has_paperless_billing": False,
        "referrals": 0,
        "nps_score": 8,
        "credit_score": 700,
        "is_business": False,
    }
    row.update(overrides)
    return row


def test_churn_features_values_and_schema(spark):
    raw = spark.createDataFrame(
        [raw_row(), raw_row(customer_id=8, total_charges=None, contract="two-year", nps_score=None)]
    )
    out = {r["customer_id"]: r.asDict() for r in compute_features(raw, FEATURE_SET).collect()}

    assert compute_features(raw, FEATURE_SET).columns == ["customer_id", *FEATURE_SET.names]
    assert dict(compute_features(raw, FEATURE_SET).dtypes)["charges_ratio"] == "float"
    first = out[7]
    assert first["charges_ratio"] == pytest.approx(400.0 / (50.0 * 10 + 1.0), rel=1e-6)
    assert first["contract_monthly"] == 1.0 and first["contract_two_year"] == 0.0
    assert first["plan_tier"] == 2.0 and first["region_code"] == 3.0 and first["payment_is_check"] == 1.0
    assert first["has_streaming"] == 1.0 and first["has_paperless_billing"] == 0.0
    second = out[8]
    assert second["total_charges"] is None, "a missing input stays missing (XGBoost's NaN)"
    assert second["charges_ratio"] == pytest.approx(500.0 / 501.0, rel=1e-6), (
        "falls back to list price x tenure"
    )
    assert second["nps_score"] is None
    assert second["contract_two_year"] == 1.0


def test_unknown_category_becomes_missing_not_a_guess(spark):
    raw = spark.createDataFrame([raw_row(plan="platinum")])
    (row,) = compute_features(raw, FEATURE_SET).collect()
    assert row["plan_tier"] is None
    assert not math.isnan(row["tenure_months"])


def test_content_hash_tracks_what_changes_values():
    base = FEATURE_SET.content_hash
    assert len(base) == 64
    reworded = dataclasses.replace(
        FEATURE_SET,
        features=(
            dataclasses.replace(FEATURE_SET.features[0], description="other words"),
            *FEATURE_SET.features[1:],
        ),
    )
    assert reworded.content_hash == base
    changed = dataclasses.replace(
        FEATURE_SET, features=(Feature("tenure_months", "tenure_months * 2"), *FEATURE_SET.features[1:])
    )
    assert changed.content_hash != base
    assert dataclasses.replace(FEATURE_SET, version=2).content_hash != base


def test_load_feature_set_by_module_name():
    assert load_feature_set("features.churn") is FEATURE_SET
    with pytest.raises(TypeError, match="must define FEATURE_SET"):
        load_feature_set("features")


def test_passthrough_keeps_extra_columns(spark):
    tiny = FeatureSet("t", 1, "customers", "customer_id", (Feature("double_tenure", "tenure_months * 2"),))
    raw = spark.createDataFrame([raw_row()])
    (row,) = compute_features(raw, tiny, passthrough=("as_of_date",)).collect()
    assert row.asDict() == {"customer_id": 7, "double_tenure": 20.0, "as_of_date": date(2026, 11, 21)}
