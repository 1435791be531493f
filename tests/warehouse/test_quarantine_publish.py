"""Row quarantine from the raw gate to the warehouse: the good rows are scored and published,
the bad ones land in `quarantine_churn` in the same transaction, counts add up to the input,
above the tolerance nothing is published, and a killed publish leaves both tables as they were."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchscore.examples.seed import SeedSpec, customers_snapshot, write_partition
from batchscore.quality.outcome import ValidationFailed
from batchscore.quality.quarantine import QuarantineExceeded
from batchscore.settings import REPO_ROOT, load_settings
from batchscore.storage.lake import SUCCESS_MARKER, Lake, PartitionError
from batchscore.storage.warehouse import QuarantineSlice, open_warehouse
from jobs import build_features, publish, validate
from tests.conftest import settings_env
from tests.warehouse.slices import DAY, quarantined, scores_file, target
from tests.warehouse.test_faults import wait_for

ROWS = 5_000  # churn's tolerance, max_share 0.001, is 5 rows of these


def churn(tmp_path, warehouse_url=None, engine="pandas"):  # type: ignore[no-untyped-def]
    """Churn's settings; engine "spark" makes these 5,000 rows a day past the in-memory limits."""
    extra = {"BATCHSCORE_WAREHOUSE_URL": warehouse_url} if warehouse_url else {}
    settings = load_settings("churn", settings_env(tmp_path, **extra))
    pipeline = settings.pipeline
    limits = {"pandas_max_rows": 1_000} if engine == "spark" else {}
    validation = pipeline.validation.model_copy(update=limits)
    # scores are written by hand below: no reason codes to go with them
    update = {"explain": None, "validation": validation}
    return settings.model_copy(update={"pipeline": pipeline.model_copy(update=update)})


def spoiled(nan_rows: int, duplicate: bool) -> tuple[pa.Table, pa.Table]:
    """(the seeded day, the day with `nan_rows` NaN monthly charges and one key given twice)."""
    good, _ = customers_snapshot(SeedSpec(rows=ROWS), DAY)
    charges = good.column("monthly_charges").to_numpy().copy()
    charges[:nan_rows] = np.nan
    bad = good.set_column(
        good.schema.get_field_index("monthly_charges"), "monthly_charges", pa.array(charges)
    )
    if duplicate:
        keys = bad.column("customer_id").to_numpy().copy()
        keys[10] = keys[11]
        bad = bad.set_column(0, "customer_id", pa.array(keys))
    return good, bad


def score_features(lake: Lake) -> int:
    """A scores partition for exactly the keys of the day's features; returns their count."""
    features = pq.read_table(lake.features_partition("churn", DAY), columns=["customer_id"])
    keys = features.column("customer_id").to_pylist()
    folder = lake.scores_partition("churn", 1, DAY)
    scores_file(folder, keys, [0.5] * len(keys))
    (folder / SUCCESS_MARKER).touch()
    return len(keys)


@pytest.mark.parametrize("engine", ["pandas", "spark"])
def test_good_rows_are_published_and_bad_ones_quarantined_with_them(warehouse_url, tmp_path, spark, engine):
    """The same rows held aside and the same kept, whether the day is judged in memory or,
    past the in-memory limits, a column at a time with the suite on Spark."""
    settings = churn(tmp_path, warehouse_url, engine)
    lake = Lake(settings.platform.lake_url)
    good, bad = spoiled(nan_rows=2, duplicate=True)
    write_partition(lake, "customers", DAY, bad)

    gated = validate.run(settings, DAY, "raw", spark=spark)
    assert (gated["engine"], gated["rows"], gated["quarantined_rows"]) == (engine, ROWS, 4)
    assert gated["quarantine"]["rules"] == {"unique(customer_id)": 2, "finite(monthly_charges)": 2}
    report = (tmp_path / "lake/reports/validation/churn/dt=2026-11-21/raw/report.html").read_text()
    assert "Quarantine: 4 of 5,000 rows held aside" in report
    assert build_features.run(settings, DAY, spark)["rows"] == ROWS - 4
    assert score_features(lake) == ROWS - 4

    result = publish.run(settings, DAY, 1, run_id="run-1")
    assert (result["rows"], result["quarantined_rows"]) == (ROWS - 4, 4)
    warehouse = open_warehouse(warehouse_url)
    held = warehouse.query(
        "SELECT customer_id, rule, row_json, run_id FROM quarantine_churn ORDER BY rule, customer_id"
    )
    scored = warehouse.query("SELECT count(*) FROM scores_churn")[0][0]
    assert scored + len(held) == ROWS, "every input row is either scored or quarantined"
    assert [row[1] for row in held] == ["finite(monthly_charges)"] * 2 + ["unique(customer_id)"] * 2
    duplicated = str(bad.column("customer_id")[10].as_py())
    assert [row[0] for row in held[2:]] == [duplicated, duplicated]
    assert json.loads(held[0][2])["monthly_charges"] == "nan" and {row[3] for row in held} == {"run-1"}
    assert "@" not in " ".join(row[2] for row in held), "emails are personal data: hashed or redacted"
    assert warehouse.query(f"SELECT count(*) FROM scores_churn WHERE customer_id = {duplicated}") == [(0,)]
    assert warehouse.query("SELECT rows_in, rows_out FROM scoring_runs") == [(ROWS, ROWS - 4)]

    # The day relanded without defects: its rerun replaces both, the quarantine now empty.
    write_partition(lake, "customers", DAY, good)
    assert validate.run(settings, DAY, "raw", spark=spark)["quarantined_rows"] == 0
    assert build_features.run(settings, DAY, spark)["rows"] == ROWS
    score_features(lake)
    assert publish.run(settings, DAY, 1, run_id="run-2")["quarantined_rows"] == 0
    assert warehouse.query("SELECT count(*) FROM quarantine_churn") == [(0,)]
    assert warehouse.query("SELECT count(*) FROM scores_churn") == [(ROWS,)]


@pytest.mark.parametrize("engine", ["pandas", "spark"])
def test_above_the_tolerance_the_day_fails_and_nothing_goes_on(tmp_path, request, engine):
    settings = churn(tmp_path, engine=engine)
    lake = Lake(settings.platform.lake_url)
    write_partition(lake, "customers", DAY, spoiled(nan_rows=6, duplicate=False)[1])
    spark = request.getfixturevalue("spark") if engine == "spark" else None

    with pytest.raises(QuarantineExceeded) as failed:
        validate.run(settings, DAY, "raw", spark=spark)
    assert isinstance(failed.value, ValidationFailed), "handled like any failed gate"
    message = str(failed.value)
    assert (
        "6 of 5,000 rows (finite(monthly_charges) 6)" in message and "above validation.quarantine" in message
    )
    assert "nothing was published" in message and "NaN in float column monthly_charges: 6 row(s)" in message
    report = (tmp_path / "lake/reports/validation/churn/dt=2026-11-21/raw/report.html").read_text()
    assert "ABOVE the tolerance" in report
    assert not lake.quarantine_partition("churn", DAY).exists()
    assert not lake.clean_partition("churn", DAY).exists()
    with pytest.raises(PartitionError, match="no quarantine verdict"):
        build_features.run(settings, DAY)


def test_a_broken_contract_is_never_quarantined(tmp_path):
    settings = churn(tmp_path)
    lake = Lake(settings.platform.lake_url)
    good, _ = spoiled(0, False)
    write_partition(lake, "customers", DAY, good.drop_columns(["plan"]))
    with pytest.raises(ValidationFailed, match="missing column plan") as failed:
        validate.run(settings, DAY, "raw")
    assert not isinstance(failed.value, QuarantineExceeded)
    assert not lake.quarantine_partition("churn", DAY).exists()


def start_publisher(url: str, scores, held: int, *pause: str) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    command = [sys.executable, "-m", "tests.warehouse.publisher_process", "--quarantine", str(held)]
    command += [url, str(scores), "run-killed", "4", *pause]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("point", ["staged", "swapped", "committed"])
def test_a_killed_publish_never_shows_quarantined_rows_without_their_scores(warehouse_url, tmp_path, point):
    warehouse = open_warehouse(warehouse_url)
    old = scores_file(tmp_path / "old", [1, 2, 3], [0.5] * 3)
    warehouse.publish_scores(
        target("run-old"), old, 3, quarantine=QuarantineSlice("quarantine_churn", quarantined(2))
    )

    def seen() -> tuple[set, int]:
        runs = {r[0] for r in warehouse.query("SELECT run_id FROM scores_churn")}
        return runs, warehouse.query("SELECT count(*) FROM quarantine_churn")[0][0]

    assert seen() == ({"run-old"}, 2)
    new = scores_file(tmp_path / "new", [1, 2, 3, 4], [0.7] * 4)
    marker = tmp_path / "paused"
    process = start_publisher(warehouse_url, new, 1, point, str(marker))
    wait_for(marker, process)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert seen() == (({"run-killed"}, 1) if point == "committed" else ({"run-old"}, 2))
