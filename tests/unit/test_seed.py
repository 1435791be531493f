"""The synthetic lake: realistic schema, deterministic, late labels, drift from a date."""

from datetime import date

import numpy as np
import pyarrow.parquet as pq

from batchscore.examples.seed import CUSTOMERS_SCHEMA, SeedSpec, customers_snapshot, seed_lake
from batchscore.storage.lake import Lake

DAY = date(2026, 11, 21)


def test_snapshot_schema_nulls_and_keys():
    table, probability = customers_snapshot(SeedSpec(rows=5000), DAY)
    assert table.schema == CUSTOMERS_SCHEMA
    assert len(CUSTOMERS_SCHEMA) == 28
    assert table.num_rows == 5000
    keys = table["customer_id"].to_numpy()
    assert len(np.unique(keys)) == 5000
    for nullable, share in [("age", 0.03), ("nps_score", 0.2), ("credit_score", 0.1)]:
        assert abs(table[nullable].null_count / 5000 - share) < 0.03
    assert table["customer_id"].null_count == 0 and table["contract"].null_count == 0
    assert 0.03 < probability.mean() < 0.3


def test_deterministic_by_seed_and_date():
    a, _ = customers_snapshot(SeedSpec(rows=1000, seed=1), DAY)
    b, _ = customers_snapshot(SeedSpec(rows=1000, seed=1), DAY)
    c, _ = customers_snapshot(SeedSpec(rows=1000, seed=2), DAY)
    d, _ = customers_snapshot(SeedSpec(rows=1000, seed=1), date(2026, 11, 20))
    assert a.equals(b)
    assert not a.equals(c)
    assert a["customer_id"].equals(d["customer_id"]), "the same customers every day"
    assert not a["sessions_last_30d"].equals(d["sessions_last_30d"])


def test_drift_moves_prices_and_contracts():
    spec = SeedSpec(rows=20000, drift_from=DAY)
    before, p_before = customers_snapshot(spec, date(2026, 11, 20))
    after, p_after = customers_snapshot(spec, DAY)
    assert after["monthly_charges"].to_numpy().mean() > 1.2 * before["monthly_charges"].to_numpy().mean()
    monthly = lambda t: np.mean(t["contract"].to_numpy(zero_copy_only=False) == "month-to-month")  # noqa: E731
    assert monthly(after) > monthly(before) + 0.1
    assert p_after.mean() > p_before.mean()


def test_lake_layout_with_late_labels(tmp_path):
    lake = Lake(str(tmp_path))
    counts = seed_lake(lake, SeedSpec(rows=300, label_lag_days=3), DAY, days=5)
    assert counts == {"customer_partitions": 5, "label_partitions": 2, "rows_per_day": 300}
    for offset in range(17, 22):
        assert lake.is_complete(lake.raw_partition("customers", date(2026, 11, offset)))
    landed = sorted(p.name for p in (tmp_path / "raw" / "churn_labels").iterdir())
    assert landed == ["dt=2026-11-20", "dt=2026-11-21"]
    labels = pq.read_table(lake.raw_partition("churn_labels", date(2026, 11, 20)))
    assert set(labels["label_date"].to_pylist()) == {date(2026, 11, 17)}, (
        "labels describe the day 3 days earlier"
    )
    assert set(labels["churned"].to_pylist()) <= {0, 1}
