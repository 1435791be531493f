"""Churn features over the `customers` table."""

from features import Feature, FeatureSet

FEATURE_SET = FeatureSet(
    name="churn_features",
    version=1,
    source_dataset="customers",
    entity_key="customer_id",
    features=(
        Feature("tenure_months", "tenure_months"),
        Feature("monthly_charges", "monthly_charges"),
        Feature("total_charges", "total_charges", nullable=True),
        Feature(
            "charges_ratio",
            "COALESCE(total_charges, monthly_charges * tenure_months)"
            " / (monthly_charges * GREATEST(tenure_months, 1) + 1.0)",
            description="billed so far relative to list price; low means heavy discounts",
        ),
        Feature("num_support_tickets", "num_support_tickets"),
        Feature("avg_session_minutes", "avg_session_minutes", nullable=True),
        Feature("sessions_last_30d", "sessions_last_30d"),
        Feature("days_since_last_login", "days_since_last_login"),
        Feature("num_devices", "num_devices"),
        Feature("data_usage_gb", "data_usage_gb"),
        Feature("late_payments_12m", "late_payments_12m"),
        Feature("discount_pct", "discount_pct"),
        Feature("has_streaming", "CASE WHEN has_streaming THEN 1 ELSE 0 END"),
        Feature("has_paperless_billing", "CASE WHEN has_paperless_billing THEN 1 ELSE 0 END"),
        Feature("referrals", "referrals"),
        Feature("nps_score", "nps_score", nullable=True),
        Feature("credit_score", "credit_score", nullable=True),
        Feature("is_business", "CASE WHEN is_business THEN 1 ELSE 0 END"),
        Feature("age", "age", nullable=True),
        Feature("contract_monthly", "CASE WHEN contract = 'month-to-month' THEN 1 ELSE 0 END"),
        Feature("contract_two_year", "CASE WHEN contract = 'two-year' THEN 1 ELSE 0 END"),
        Feature(
            "plan_tier",
            "CASE plan WHEN 'basic' THEN 0 WHEN 'standard' THEN 1 WHEN 'premium' THEN 2 END",
        ),
        Feature("payment_is_check", "CASE WHEN payment_method = 'check' THEN 1 ELSE 0 END"),
        Feature(
            "region_code",
            "CASE region WHEN 'north' THEN 0 WHEN 'south' THEN 1 WHEN 'east' THEN 2"
            " WHEN 'west' THEN 3 WHEN 'central' THEN 4 END",
        ),
    ),
)
