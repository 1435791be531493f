"""The deliveries example: a regression over string-keyed shipments with categorical features.

Seeded lake (deterministic, late labels, drift), its pipeline file, its suites on seeded data
and on the features computed from it, a learnable label, and `batchscore lake seed --example`.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchscore.examples.deliveries import (
    OUTCOMES,
    SHIPMENTS,
    SHIPMENTS_SCHEMA,
    DeliveriesSpec,
    seed_deliveries,
    shipments_for,
)
from batchscore.quality.suites import load_suite
from batchscore.quality.validation import validate_table
from batchscore.settings import REPO_ROOT, load_pipeline
from batchscore.storage.lake import Lake, file_sha256
from features import compute_features
from features.deliveries import FEATURE_SET

DAY = date(2026, 11, 21)
ROWS = 2000
DAYS = 6
LAG = 3
SUITES = REPO_ROOT / "expectations" / "deliveries"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> tuple[Lake, dict[str, int]]:
    """Six days of 2,000 shipments ending DAY; outcomes for the first three have landed."""
    lake = Lake(str(tmp_path_factory.mktemp("deliveries") / "lake"))
    return lake, seed_deliveries(lake, DeliveriesSpec(rows=ROWS, label_lag_days=LAG), DAY, DAYS)


def days() -> list[date]:
    return [DAY - timedelta(days=DAYS - 1 - offset) for offset in range(DAYS)]


def parquet_checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): file_sha256(p) for p in sorted(root.rglob("*.parquet"))}


def test_same_seed_writes_identical_bytes(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        seed_deliveries(Lake(str(tmp_path / name)), DeliveriesSpec(rows=500, seed=seed), DAY, 4)
    a, b, c = (parquet_checksums(tmp_path / name) for name in "abc")
    assert len(a) == 4 + 1, "four shipment partitions and the one outcome landed by DAY"
    assert a == b, "same seed, same bytes"
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a), "another seed, other data"


def test_schema_types_nulls_and_categories():
    table, expected = shipments_for(DeliveriesSpec(rows=20_000), DAY)
    assert table.schema == SHIPMENTS_SCHEMA and table.num_rows == 20_000
    assert table["shipment_id"][41].as_py() == "SHP-20261121-0000042"
    assert abs(table["declared_value_eur"].null_count / 20_000 - 0.03) < 0.01
    assert abs(table["customer_segment"].null_count / 20_000 - 0.01) < 0.005
    nullable = {"declared_value_eur", "customer_segment"}
    assert all(table[c].null_count == 0 for c in table.column_names if c not in nullable)
    assert set(table["carrier"].to_pylist()) == {"dhl", "ups", "fedex", "postnl", "dpd"}
    assert set(table["service_level"].to_pylist()) == {"economy", "standard", "express"}
    assert len(set(table["origin_region"].to_pylist())) == 6
    assert len(set(table["route_code"].to_pylist())) > 5000, "route codes are high-cardinality"
    hours = table["pickup_hour"].to_numpy()
    assert hours.min() == 0 and hours.max() == 23
    assert (expected > 0).all()


def test_string_keys_are_unique_across_days(seeded):
    lake, _ = seeded
    keys = pa.chunked_array(
        [pq.read_table(lake.raw_partition(SHIPMENTS, day))["shipment_id"] for day in days()]
    )
    assert keys.type == pa.string()
    assert len(keys) == ROWS * DAYS and len(set(keys.to_pylist())) == ROWS * DAYS
    assert all(re.fullmatch(r"SHP-\d{8}-\d{7}", key) for key in keys.to_pylist()[:: ROWS // 4])


def test_outcomes_land_label_lag_days_later(seeded):
    lake, counts = seeded
    assert counts == {"shipment_partitions": DAYS, "label_partitions": DAYS - LAG, "rows_per_day": ROWS}
    landed = sorted(p.name for p in (Path(lake.url) / "raw" / OUTCOMES).iterdir())
    assert landed == ["dt=2026-11-19", "dt=2026-11-20", "dt=2026-11-21"]
    for arrival in (date(2026, 11, 19), date(2026, 11, 21)):
        labels = pq.read_table(lake.raw_partition(OUTCOMES, arrival))
        shipped = arrival - timedelta(days=LAG)
        assert set(labels["label_date"].to_pylist()) == {shipped}, "labels describe the day 3 days earlier"
        assert labels["shipment_id"].equals(
            pq.read_table(lake.raw_partition(SHIPMENTS, shipped))["shipment_id"]
        )
        hours = labels["delivery_hours"].to_numpy()
        assert labels["delivery_hours"].null_count == 0 and (hours > 0).all() and hours.max() < 1000


def test_drift_raises_backlog_and_distance_and_slows_service():
    spec = DeliveriesSpec(rows=20_000, drift_from=DAY)
    before, hours_before = shipments_for(spec, DAY - timedelta(days=1))
    after, hours_after = shipments_for(spec, DAY)
    mean = lambda t, c: float(np.mean(t[c].to_numpy()))  # noqa: E731
    assert mean(after, "warehouse_backlog") > 1.4 * mean(before, "warehouse_backlog")
    assert mean(after, "distance_km") > 1.25 * mean(before, "distance_km")
    economy = lambda t: np.mean(t["service_level"].to_numpy(zero_copy_only=False) == "economy")  # noqa: E731
    assert economy(after) > economy(before) + 0.1
    assert hours_after.mean() > 1.2 * hours_before.mean()


def test_the_pipeline_file_validates():
    pipeline = load_pipeline(REPO_ROOT / "pipelines" / "deliveries.yaml")
    assert pipeline.model.name == "deliveries_xgb" and pipeline.model.task == "regression"
    assert (pipeline.dataset.name, pipeline.dataset.entity_key) == (SHIPMENTS, "shipment_id")
    assert (pipeline.labels.dataset, pipeline.labels.column) == (OUTCOMES, "delivery_hours")
    assert pipeline.features == "features.deliveries" and pipeline.inference.backend == "xgboost"
    assert pipeline.drift.method == "psi" and pipeline.schedule.start_date == date(2026, 11, 1)
    assert pipeline.expectations_dir == SUITES
    assert FEATURE_SET.source_dataset == SHIPMENTS and FEATURE_SET.entity_key == "shipment_id"
    assert "route_code" not in " ".join(f.expr for f in FEATURE_SET.features), "route_code is skipped"


@pytest.mark.parametrize("stage", ["raw", "features", "scores"])
def test_suites_load_every_expectation(stage):
    declared = json.loads((SUITES / f"{stage}.json").read_text())
    suite = load_suite(SUITES / f"{stage}.json")
    assert len(suite.expectations) == len(declared["expectations"])
    assert suite.schema["shipment_id"] == "string"


def gate(table: pa.Table, stage: str, tmp_path: Path):
    return validate_table(
        table,
        load_suite(SUITES / f"{stage}.json"),
        pipeline="deliveries",
        dataset=stage,
        stage=stage,
        partition=f"lake/{stage}/dt={DAY}",
        report_dir=tmp_path / stage,
        raise_on_failure=False,
    )


def test_raw_suite_passes_on_a_seeded_partition(seeded, tmp_path):
    lake, _ = seeded
    outcome = gate(pq.read_table(lake.raw_partition(SHIPMENTS, DAY)), "raw", tmp_path)
    assert outcome.success and outcome.contract == [] and outcome.failed == [], outcome.failed
    assert outcome.evaluated == len(json.loads((SUITES / "raw.json").read_text())["expectations"])


def shipment_features(spark, partitions: list[Path], passthrough: tuple[str, ...] = ()):
    """The shared feature code over raw partitions (string shipment ids stay strings)."""
    return compute_features(spark.read.parquet(*[str(p) for p in partitions]), FEATURE_SET, passthrough)


def test_features_suite_passes_on_computed_features(spark, seeded, tmp_path):
    lake, _ = seeded
    out = tmp_path / "features"
    shipment_features(spark, [lake.raw_partition(SHIPMENTS, DAY)]).write.parquet(str(out))
    table = pq.read_table(out)
    assert table.column_names == ["shipment_id", *FEATURE_SET.names] and table.num_rows == ROWS
    assert table.schema.field("shipment_id").type == pa.string()
    outcome = gate(table, "features", tmp_path)
    assert outcome.success and outcome.contract == [] and outcome.failed == [], outcome.failed


def test_the_label_is_learnable_from_the_features(spark, seeded):
    import xgboost as xgb

    lake, _ = seeded
    labelled = days()[: DAYS - LAG]
    frame = shipment_features(
        spark, [lake.raw_partition(SHIPMENTS, d) for d in labelled], passthrough=("created_date",)
    ).toPandas()
    outcomes = pa.concat_tables(
        [pq.read_table(lake.raw_partition(OUTCOMES, d + timedelta(days=LAG))) for d in labelled]
    ).to_pandas()
    data = frame.merge(outcomes, on="shipment_id", validate="one_to_one")
    assert len(data) == ROWS * len(labelled)
    train, test = data[data.created_date < labelled[-1]], data[data.created_date == labelled[-1]]
    matrix = lambda part: xgb.DMatrix(part[FEATURE_SET.names], label=part["delivery_hours"])  # noqa: E731
    params = {"objective": "reg:squarederror", "max_depth": 4, "eta": 0.1, "seed": 0, "nthread": 2}
    booster = xgb.train(params, matrix(train), num_boost_round=150)
    truth = test["delivery_hours"].to_numpy()
    rmse = float(np.sqrt(np.mean((booster.predict(matrix(test)) - truth) ** 2)))
    baseline = float(np.sqrt(np.mean((train["delivery_hours"].mean() - truth) ** 2)))
    assert rmse < 0.5 * baseline, f"model RMSE {rmse:.2f} h vs mean predictor {baseline:.2f} h"


def test_cli_seeds_the_deliveries_example(tmp_path, monkeypatch, capsys):
    from batchscore.cli import main

    monkeypatch.setenv("BATCHSCORE_HOME", str(tmp_path))
    monkeypatch.setenv("BATCHSCORE_LAKE_URL", str(tmp_path / "lake"))
    argv = ["lake", "seed", "--rows", "100", "--days", "4", "--end-date", "2026-11-21", "--seed", "3"]
    deliveries = ["--example", "deliveries", "--label-lag-days", "2", "--drift-from", "2026-11-20"]
    assert main([*argv, *deliveries]) == 0
    assert "Seeded 4 shipment and 2 label partitions" in capsys.readouterr().out
    lake = Lake(str(tmp_path / "lake"))
    for offset in range(18, 22):
        assert lake.is_complete(lake.raw_partition(SHIPMENTS, date(2026, 11, offset)))
    assert sorted(p.name for p in (tmp_path / "lake" / "raw" / OUTCOMES).iterdir()) == [
        "dt=2026-11-20",
        "dt=2026-11-21",
    ]
    assert not (tmp_path / "lake" / "raw" / "customers").exists()
    assert main(argv) == 0, "churn stays the default example"
    assert "Seeded 4 customer and 1 label partitions" in capsys.readouterr().out
    assert lake.is_complete(lake.raw_partition("customers", DAY))
