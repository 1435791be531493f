"""The bad-input catalogue at the job level: each defect in a generated raw partition stops the
raw gate with a clear error, nothing is built from it, and the warehouse keeps its state.

(The sensor cases, missing and late partitions, run through Airflow in test_partition_sensor.py.)
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from batchscore.examples.seed import SeedSpec, customers_snapshot, write_partition
from batchscore.quality.outcome import ValidationFailed
from batchscore.settings import Settings, ValidationSettings, load_settings
from batchscore.storage.lake import SUCCESS_MARKER, Lake, PartitionError
from batchscore.storage.warehouse import ScoresSlice, open_warehouse
from jobs import validate
from tests.conftest import settings_env

pytestmark = pytest.mark.integration

PREVIOUS, BAD_DAY = date(2026, 11, 20), date(2026, 11, 21)
ROWS = 400


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    """A lake and a warehouse that already hold the previous day's published scores."""
    home = tmp_path_factory.mktemp("catalogue")
    settings = load_settings("churn", settings_env(home))
    raw, _ = customers_snapshot(SeedSpec(rows=ROWS), PREVIOUS)
    scores = pa.table(
        {
            "customer_id": raw["customer_id"],
            "score": pa.array(np.linspace(0, 1, ROWS)),
            "model_version": pa.array(np.ones(ROWS, dtype=np.int64)),
            "run_date": pa.array([PREVIOUS] * ROWS, pa.date32()),
        }
    )
    scores_dir = home / "published"
    scores_dir.mkdir()
    pq.write_table(scores, scores_dir / "part-0.parquet")
    target = ScoresSlice(
        pipeline="churn",
        table="scores_churn",
        entity_key="customer_id",
        run_date=PREVIOUS,
        model_name="churn_xgb",
        model_version=1,
        run_id="previous",
    )
    open_warehouse(settings.platform.warehouse_url).publish_scores(target, scores_dir, expected_rows=ROWS)
    write_partition(Lake(settings.platform.lake_url), "customers", PREVIOUS, raw)
    return settings


def warehouse_state(settings: Settings) -> dict[str, list[tuple]]:
    path = settings.platform.warehouse_url.removeprefix("duckdb://")
    with duckdb.connect(path, read_only=True) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {t: sorted(con.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}


def good_table() -> pa.Table:
    table, _ = customers_snapshot(SeedSpec(rows=ROWS), BAD_DAY)
    return table


def with_column(table: pa.Table, name: str, values) -> pa.Table:
    index = table.schema.get_field_index(name)
    values = (
        values
        if isinstance(values, pa.Array | pa.ChunkedArray)
        else pa.array(values, table.schema.field(name).type)
    )
    return table.set_column(index, name, values)


def edited(name: str, at: int, value) -> pa.Table:
    table = good_table()
    values = table[name].to_pylist()
    values[at] = value
    return with_column(table, name, values)


def land(lake: Lake, table: pa.Table) -> Path:
    return write_partition(lake, "customers", BAD_DAY, table)


def land_files(lake: Lake, files: dict[str, bytes | pa.Table], marker: bool = True) -> Path:
    final = lake.raw_partition("customers", BAD_DAY)
    final.mkdir(parents=True)
    for name, content in files.items():
        if isinstance(content, pa.Table):
            pq.write_table(content, final / name)
        else:
            (final / name).write_bytes(content)
    if marker:
        (final / SUCCESS_MARKER).touch()
    return final


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def nulls_in(name: str, share: float) -> pa.Table:
    table = good_table()
    mask = pa.array(np.arange(table.num_rows) < int(table.num_rows * share))
    return with_column(
        table, name, pc.if_else(mask, pa.scalar(None, table.schema.field(name).type), table[name])
    )


# kind -> (how to land the bad partition, the error type, what the message must say)
CATALOGUE = {
    "missing partition": (lambda lake: None, PartitionError, "does not exist"),
    "no _SUCCESS marker": (
        lambda lake: land_files(lake, {"part-0.parquet": good_table()}, marker=False),
        PartitionError,
        "has no _SUCCESS marker: not complete",
    ),
    "no files": (lambda lake: land_files(lake, {}), PartitionError, "holds no Parquet files"),
    "zero rows": (
        lambda lake: land(lake, good_table().slice(0, 0)),
        ValidationFailed,
        "expect_table_row_count_to_be_between: observed 0",
    ),
    "missing column": (
        lambda lake: land(lake, good_table().drop_columns(["plan"])),
        ValidationFailed,
        "missing column plan (string)",
    ),
    "renamed column": (
        lambda lake: land(lake, good_table().rename_columns({"plan": "tariff"})),
        ValidationFailed,
        "renamed? column plan (string) is missing and tariff (string) is not declared",
    ),
    "extra column": (
        lambda lake: land(lake, good_table().append_column("surprise", pa.array(np.zeros(ROWS)))),
        ValidationFailed,
        "extra column surprise (double) is not declared",
    ),
    "strings in a numeric column": (
        lambda lake: land(
            lake,
            with_column(good_table(), "tenure_months", pc.cast(good_table()["tenure_months"], pa.string())),
        ),
        ValidationFailed,
        "retyped column tenure_months: declared int32, found string",
    ),
    "nulls beyond tolerance": (
        lambda lake: land(lake, nulls_in("credit_score", 0.5)),
        ValidationFailed,
        "expect_column_values_to_not_be_null on credit_score",
    ),
    "null in a required column": (
        lambda lake: land(lake, nulls_in("monthly_charges", 0.01)),
        ValidationFailed,
        "expect_column_values_to_not_be_null on monthly_charges: 4 unexpected (1%)",
    ),
    "NaN": (
        lambda lake: land(lake, edited("avg_session_minutes", 3, float("nan"))),
        ValidationFailed,
        "NaN in float column avg_session_minutes: 1 row(s)",
    ),
    "+inf": (
        lambda lake: land(lake, edited("data_usage_gb", 0, float("inf"))),
        ValidationFailed,
        'expect_column_values_to_be_between on data_usage_gb: 1 unexpected (0.25%), e.g. ["inf"]',
    ),
    "-inf": (
        lambda lake: land(lake, edited("monthly_charges", 0, float("-inf"))),
        ValidationFailed,
        'expect_column_values_to_be_between on monthly_charges: 1 unexpected (0.25%), e.g. ["-inf"]',
    ),
    "out of range": (
        lambda lake: land(lake, edited("age", 0, 130)),
        ValidationFailed,
        "expect_column_values_to_be_between on age: 1 unexpected",
    ),
    "unknown category": (
        lambda lake: land(lake, edited("region", 0, "atlantis")),
        ValidationFailed,
        'expect_column_values_to_be_in_set on region: 1 unexpected (0.25%), e.g. ["atlantis"]',
    ),
    "duplicate entity keys": (
        lambda lake: land(lake, edited("customer_id", 1, good_table()["customer_id"][0].as_py())),
        ValidationFailed,
        "expect_column_values_to_be_unique on customer_id: 2 unexpected (0.5%)",
    ),
    "truncated Parquet": (
        lambda lake: land_files(lake, {"part-0.parquet": parquet_bytes(good_table())[:-700]}),
        PartitionError,
        "is unreadable: part-0.parquet",
    ),
    "not Parquet at all": (
        lambda lake: land_files(lake, {"part-0.parquet": b"PAR1" + b"\x00garbage" * 200}),
        PartitionError,
        "is unreadable: part-0.parquet",
    ),
    "files with different schemas": (
        lambda lake: land_files(
            lake,
            {
                "part-0.parquet": good_table().slice(0, 200),
                "part-1.parquet": good_table().slice(200).drop_columns(["age"]),
            },
        ),
        PartitionError,
        "mixes schemas: file part-1.parquet has a different schema than part-0.parquet",
    ),
}


@pytest.fixture
def lake(settings) -> Lake:
    lake = Lake(settings.platform.lake_url)
    shutil.rmtree(lake.raw_partition("customers", BAD_DAY), ignore_errors=True)
    shutil.rmtree(lake.reports_dir("validation", "churn", BAD_DAY), ignore_errors=True)
    return lake


@pytest.mark.parametrize("kind", list(CATALOGUE))
def test_bad_partition_stops_the_raw_gate_and_nothing_changes(settings, lake, kind):
    make, error, message = CATALOGUE[kind]
    make(lake)
    before = warehouse_state(settings)

    with pytest.raises(error) as raised:
        validate.run(settings, BAD_DAY, "raw")

    assert message in str(raised.value)
    assert str(lake.raw_partition("customers", BAD_DAY)) in str(raised.value), "names the partition"
    report = lake.reports_dir("validation", "churn", BAD_DAY, "raw")
    if error is ValidationFailed:
        assert str(raised.value).startswith(
            "validation FAILED: pipeline churn, dataset customers (raw), partition "
        )
        assert (report / "result.json").is_file() and (report / "report.html").is_file()
    assert warehouse_state(settings) == before
    assert before["scores_churn"] and {r[1] for r in before["scores_churn"]} == {PREVIOUS}
    assert not lake.features_partition("churn", BAD_DAY).exists()
    assert not (lake.root / "_staging").exists() or not any((lake.root / "_staging").rglob("*.parquet"))


def test_the_gate_never_falls_back_to_another_days_partition(settings, lake):
    assert Lake.is_complete(lake.raw_partition("customers", PREVIOUS))
    with pytest.raises(PartitionError, match=f"dt={BAD_DAY.isoformat()} does not exist"):
        validate.run(settings, BAD_DAY, "raw")
    assert not lake.reports_dir("validation", "churn", PREVIOUS).exists()


def test_the_spark_engine_gives_the_same_verdicts(settings, lake, spark):
    """Beyond pipeline.validation's limits the gate runs the same suite on GX's Spark engine."""
    final = lake.scores_partition("churn", 7, BAD_DAY)
    n = 300
    scores = pa.table(
        {
            "customer_id": pa.array(np.arange(n), pa.int64()),
            "score": pa.array(np.linspace(0, 1, n)),
            "model_version": pa.array(np.full(n, 7), pa.int64()),
            "run_date": pa.array([BAD_DAY] * n, pa.date32()),
        }
    )
    tiny = settings.pipeline.model_copy(update={"validation": ValidationSettings(pandas_max_rows=n - 1)})
    on_spark = settings.model_copy(update={"pipeline": tiny})
    for table, expected in (
        (scores, None),
        (
            with_column(scores, "customer_id", [0, *range(n - 1)]),
            "expect_column_values_to_be_unique on customer_id: 2",
        ),
        (
            with_column(scores, "score", [float("nan"), *np.linspace(0, 1, n - 1)]),
            "NaN in float column score: 1 row",
        ),
    ):
        with lake.staged_partition(final) as staging:
            staging.mkdir(parents=True)
            pq.write_table(table, staging / "part-0.parquet")
        if expected is None:
            result = validate.run(on_spark, BAD_DAY, "scores", 7, spark=spark)
            assert result["engine"] == "spark" and result["passed"] == result["evaluated"] == 8
        else:
            with pytest.raises(ValidationFailed, match=expected) as raised:
                validate.run(on_spark, BAD_DAY, "scores", 7, spark=spark)
            assert raised.value.result.engine == "spark"


def test_a_run_without_a_logical_date_is_refused():
    from batchscore.orchestration.run_context import run_date_of

    with pytest.raises(ValueError, match="this run has no logical date; batchscore never guesses the day"):
        run_date_of({"logical_date": None})
