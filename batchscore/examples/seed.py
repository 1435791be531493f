"""A synthetic, realistic lake for the example churn pipeline.

Every day holds a snapshot of the same customers (`raw/customers/dt=D/`); their outcomes
land `label_lag_days` later in `raw/churn_labels/dt=D+lag/`, keyed by `label_date = D`.
From `drift_from` on, prices rise, engagement falls and customers grow more price
sensitive, so both the inputs and the relation to the label drift. Output depends only
on (seed, rows, date), never on the wall clock, and is vectorised: 1M rows a day in
about a second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batchscore.storage.lake import Lake

log = logging.getLogger(__name__)

CUSTOMERS = "customers"
LABELS = "churn_labels"
EPOCH = date(2020, 1, 1)
ROW_GROUP_ROWS = 131_072

GENDERS = np.array(["F", "M", "U"])
REGIONS = np.array(["north", "south", "east", "west", "central"])
PLANS = np.array(["basic", "standard", "premium"])
CONTRACTS = np.array(["month-to-month", "one-year", "two-year"])
PAYMENTS = np.array(["card", "bank_transfer", "paypal", "check"])

CUSTOMERS_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("as_of_date", pa.date32()),
        ("signup_date", pa.date32()),
        ("age", pa.int32()),
        ("gender", pa.string()),
        ("region", pa.string()),
        ("plan", pa.string()),
        ("contract", pa.string()),
        ("payment_method", pa.string()),
        ("tenure_months", pa.int32()),
        ("monthly_charges", pa.float64()),
        ("total_charges", pa.float64()),
        ("num_support_tickets", pa.int32()),
        ("avg_session_minutes", pa.float64()),
        ("sessions_last_30d", pa.int32()),
        ("days_since_last_login", pa.int32()),
        ("num_devices", pa.int32()),
        ("data_usage_gb", pa.float64()),
        ("late_payments_12m", pa.int32()),
        ("discount_pct", pa.float64()),
        ("has_streaming", pa.bool_()),
        ("has_paperless_billing", pa.bool_()),
        ("referrals", pa.int32()),
        ("nps_score", pa.int32()),
        ("credit_score", pa.int32()),
        ("is_business", pa.bool_()),
        # Personal data (dataset.pii_columns): never a feature, never in a report in clear.
        ("email", pa.string()),
        ("phone", pa.string()),
    ]
)

LABELS_SCHEMA = pa.schema([("customer_id", pa.int64()), ("label_date", pa.date32()), ("churned", pa.int8())])


@dataclass(frozen=True)
class SeedSpec:
    rows: int
    seed: int = 42
    drift_from: date | None = None
    label_lag_days: int = 3


def _drifted(spec: SeedSpec, day: date) -> bool:
    return spec.drift_from is not None and day >= spec.drift_from


def _masked(rng: np.random.Generator, values: np.ndarray, null_share: float) -> pa.Array:
    return pa.array(values, mask=rng.random(values.shape[0]) < null_share)


def customers_snapshot(spec: SeedSpec, day: date) -> tuple[pa.Table, np.ndarray]:
    """The customers partition for `day` and each customer's true churn probability."""
    n = spec.rows
    base = np.random.default_rng([spec.seed, 0])  # who the customers are: stable across days
    rng = np.random.default_rng([spec.seed, 1, (day - EPOCH).days])  # what happened that day
    drift = _drifted(spec, day)
    # The draws below run in a fixed order on both generators: reordering them changes the data.
    columns = _accounts(base, rng, day, n, drift)
    columns.update(_activity(base, rng, n, drift, columns["contract_idx"]))
    probability = _churn_probability(columns, drift)
    return _customers_table(base, rng, day, n, columns), probability


def _accounts(
    base: np.random.Generator, rng: np.random.Generator, day: date, n: int, drift: bool
) -> dict[str, np.ndarray]:
    """Who each customer is and what they pay (drawn before `_activity`)."""
    ids = np.arange(1, n + 1, dtype=np.int64) * 7919 % 10_000_019
    signup_days = base.integers(0, 365 * 6, n)
    signup = np.array(day - timedelta(days=365 * 6), dtype="datetime64[D]") + signup_days
    tenure = ((np.datetime64(day) - signup).astype(np.int64) // 30).astype(np.int32)
    age = np.clip(base.normal(44, 14, n), 18, 100).astype(np.int32)
    is_business = base.random(n) < 0.12
    contract_p = [0.62, 0.23, 0.15] if drift else [0.45, 0.30, 0.25]
    contract_idx = _choice(base if not drift else rng, 3, contract_p, n)
    plan_idx = _choice(base, 3, [0.5, 0.35, 0.15], n)
    payment_idx = _choice(base, 4, [0.45, 0.25, 0.18, 0.12], n)
    price = np.array([29.0, 59.0, 99.0])[plan_idx] * np.where(is_business, 1.6, 1.0)
    price *= 1.0 + base.normal(0, 0.08, n)
    if drift:
        price *= 1.3
    discount = np.clip(base.gamma(1.5, 4.0, n), 0, 60)
    monthly = np.clip(price * (1 - discount / 100), 5, 999).round(2)
    total = (monthly * np.maximum(tenure, 1) * (1 + rng.normal(0, 0.02, n))).round(2)
    return {
        "ids": ids,
        "signup": signup,
        "tenure": tenure,
        "age": age,
        "is_business": is_business,
        "contract_idx": contract_idx,
        "plan_idx": plan_idx,
        "payment_idx": payment_idx,
        "discount": discount,
        "monthly": monthly,
        "total": total,
    }


def _activity(
    base: np.random.Generator, rng: np.random.Generator, n: int, drift: bool, contract_idx: np.ndarray
) -> dict[str, np.ndarray]:
    """Engagement, support and profile columns (drawn after `_accounts`)."""
    engagement = np.exp(base.normal(0, 0.5, n)) * (0.7 if drift else 1.0)
    sessions = rng.poisson(30 * engagement).astype(np.int32)
    session_minutes = np.clip(rng.gamma(2.0, 12.0 * engagement), 0, 1440).round(1)
    last_login = np.minimum(rng.geometric(np.clip(0.25 * engagement, 0.01, 1)) - 1, 3650)
    tickets = rng.poisson(0.6 + 0.8 * (contract_idx == 0)).astype(np.int32)
    late = np.minimum(rng.poisson(0.4, n), 12).astype(np.int32)
    devices = 1 + base.poisson(1.5, n).astype(np.int32)
    usage = (rng.gamma(2.0, 8.0, n) * devices * engagement).round(2)
    streaming = base.random(n) < 0.4
    paperless = base.random(n) < 0.6
    referrals = base.poisson(0.3, n).astype(np.int32)
    nps = np.clip(np.round(base.normal(7, 2, n) - tickets * 0.5), 0, 10).astype(np.int32)
    credit = np.clip(base.normal(680, 70, n), 300, 850).astype(np.int32)
    return {
        "sessions": sessions,
        "session_minutes": session_minutes,
        "last_login": last_login,
        "tickets": tickets,
        "late": late,
        "devices": devices,
        "usage": usage,
        "streaming": streaming,
        "paperless": paperless,
        "referrals": referrals,
        "nps": nps,
        "credit": credit,
    }


def _churn_probability(c: dict[str, np.ndarray], drift: bool) -> np.ndarray:
    """Each customer's true churn probability (a logistic model that grows price sensitive)."""
    price_sensitivity = 0.035 if drift else 0.012
    logit = (
        -2.6
        + 1.1 * (c["contract_idx"] == 0)
        - 0.8 * (c["contract_idx"] == 2)
        + 0.35 * c["tickets"]
        + 0.05 * np.minimum(c["last_login"], 60)
        - 0.025 * np.minimum(c["tenure"], 72)
        + 0.45 * c["late"]
        - 0.18 * (c["nps"] - 7)
        + price_sensitivity * (c["monthly"] - 60)
        - 0.012 * c["sessions"]
        + 0.5 * (c["payment_idx"] == 3)
    )
    return 1.0 / (1.0 + np.exp(-logit))


def _customers_table(
    base: np.random.Generator, rng: np.random.Generator, day: date, n: int, c: dict[str, np.ndarray]
) -> pa.Table:
    """The partition's arrow table; its null masks and gender/region are the last draws."""
    return pa.Table.from_arrays(
        [
            pa.array(c["ids"]),
            pa.array(np.full(n, np.datetime64(day), dtype="datetime64[D]")),
            pa.array(c["signup"]),
            _masked(rng, c["age"], 0.03),
            _categories(GENDERS, _choice(base, 3, [0.49, 0.49, 0.02], n)),
            _categories(REGIONS, _choice(base, 5, [0.2, 0.25, 0.2, 0.2, 0.15], n)),
            _categories(PLANS, c["plan_idx"]),
            _categories(CONTRACTS, c["contract_idx"]),
            _categories(PAYMENTS, c["payment_idx"]),
            pa.array(c["tenure"]),
            pa.array(c["monthly"]),
            _masked(rng, c["total"], 0.02),
            pa.array(c["tickets"]),
            _masked(rng, c["session_minutes"], 0.05),
            pa.array(c["sessions"]),
            pa.array(c["last_login"].astype(np.int32)),
            pa.array(c["devices"]),
            pa.array(c["usage"]),
            pa.array(c["late"]),
            pa.array(c["discount"].round(2)),
            pa.array(c["streaming"]),
            pa.array(c["paperless"]),
            pa.array(c["referrals"]),
            _masked(rng, c["nps"], 0.2),
            _masked(rng, c["credit"], 0.1),
            pa.array(c["is_business"]),
            *_contact(c["ids"]),
        ],
        schema=CUSTOMERS_SCHEMA,
    )


def _contact(ids: np.ndarray) -> list[pa.Array]:
    """Each customer's email and phone number, derived from the id (no random draws)."""
    import pyarrow.compute as pc

    digits = pc.cast(pa.array(ids), pa.string())
    email = pc.binary_join_element_wise("customer.", digits, "@example.com", "")
    local = pc.utf8_lpad(pc.cast(pa.array(ids % 10_000_000), pa.string()), 7, "0")
    phone = pc.binary_join_element_wise("+1-555-", local, "")
    return [email, phone]


def _categories(values: np.ndarray, index: np.ndarray) -> pa.Array:
    """Strings built from category indices without a per-row Python object."""
    dictionary = pa.DictionaryArray.from_arrays(pa.array(index.astype(np.int32)), pa.array(values))
    return dictionary.cast(pa.string())


def _choice(rng: np.random.Generator, k: int, p: list[float], n: int) -> np.ndarray:
    return np.searchsorted(np.cumsum(p), rng.random(n) * sum(p)).clip(0, k - 1)


def labels_for(spec: SeedSpec, day: date, table: pa.Table, probability: np.ndarray) -> pa.Table:
    """Outcomes of the customers snapshotted on `day`, drawn from their true probability."""
    rng = np.random.default_rng([spec.seed, 2, (day - EPOCH).days])
    churned = (rng.random(len(probability)) < probability).astype(np.int8)
    return pa.Table.from_arrays(
        [table["customer_id"], table["as_of_date"], pa.array(churned)], schema=LABELS_SCHEMA
    )


def write_partition(lake: Lake, dataset: str, dt: date, table: pa.Table) -> Path:
    """Land one raw partition the way an upstream job should: files first, `_SUCCESS` last."""
    final = lake.raw_partition(dataset, dt)
    with lake.staged_partition(final) as staging:
        staging.mkdir(parents=True)
        pq.write_table(
            table, staging / "part-00000.parquet", row_group_size=ROW_GROUP_ROWS, compression="snappy"
        )
    return final


def seed_lake(
    lake: Lake,
    spec: SeedSpec,
    end: date,
    days: int,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Write `days` daily partitions ending at `end`, plus every label that has landed by `end`."""
    counts = {"customer_partitions": 0, "label_partitions": 0, "rows_per_day": spec.rows}
    first = end - timedelta(days=days - 1)
    for offset in range(days):
        day = first + timedelta(days=offset)
        table, probability = customers_snapshot(spec, day)
        write_partition(lake, CUSTOMERS, day, table)
        counts["customer_partitions"] += 1
        arrival = day + timedelta(days=spec.label_lag_days)
        if arrival <= end:
            write_partition(lake, LABELS, arrival, labels_for(spec, day, table, probability))
            counts["label_partitions"] += 1
        if progress:
            progress(
                f"seeded {day.isoformat()} ({spec.rows:,} rows{', drifted' if _drifted(spec, day) else ''})"
            )
    return counts
