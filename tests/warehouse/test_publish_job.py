"""`jobs.publish` (what the nightly DAG's publish task runs) on both warehouses, chosen only by URL."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchscore.settings import load_settings
from batchscore.storage.lake import SUCCESS_MARKER, Lake, partition_checksum
from jobs import publish
from tests.conftest import settings_env
from tests.warehouse.slices import DAY, held_rows, reasons_file, scores_file


def land_day(lake: Lake, raw_columns: dict[str, list[object]] | None = None) -> str:
    """A raw partition, the features built from it (manifest with its checksum) and the scores
    of three customers; returns the raw partition's checksum."""
    raw = lake.raw_partition("customers", DAY)
    raw.mkdir(parents=True)
    columns = raw_columns or {
        "customer_id": [3, 2, 1],
        "region": ["east", None, "north"],
        "plan": ["basic", "pro", "basic"],
        "contract": ["one-year", "two-year", "month-to-month"],
        "email": ["c@x.org", "b@x.org", "a@x.org"],
    }
    pq.write_table(pa.table(columns), raw / "part-0.parquet")
    (raw / SUCCESS_MARKER).touch()
    checksum = partition_checksum(raw)
    features = lake.features_partition("churn", DAY)
    features.mkdir(parents=True)
    pq.write_table(pa.table({"customer_id": [1, 2, 3]}), features / "part-0.parquet")
    (features / "_batchscore.json").write_text(json.dumps({"rows": 3, "input_checksum": checksum}))
    (features / SUCCESS_MARKER).touch()
    scores = scores_file(lake.scores_partition("churn", 1, DAY), [1, 2, 3], [0.2, 0.4, 0.6])
    (scores / SUCCESS_MARKER).touch()
    reasons_file(
        lake.reasons_partition("churn", 1, DAY), scores, [1, 2, 3]
    )  # churn.yaml has explain: top_k 3
    held_rows(lake, checksum)  # churn.yaml has a quarantine: validate_raw held nothing aside
    return checksum


def test_publish_job_records_every_attempt_with_its_cost(warehouse_url, tmp_path):
    settings = load_settings("churn", settings_env(tmp_path, BATCHSCORE_WAREHOUSE_URL=warehouse_url))
    lake = Lake(settings.platform.lake_url)
    checksum = land_day(lake)

    for try_number in (1, 2):
        result = publish.run(
            settings,
            DAY,
            1,
            run_id="scheduled__2026-11-21",
            try_number=try_number,
            stage_seconds={"score": 1.5},
            stage_cpu_seconds={"score": 3.0},
        )
    assert result["rows"] == 3 and result["replaced_rows"] == 3
    assert "postgres@" not in result["warehouse"] or warehouse_url.startswith("postgresql://postgres@")

    from batchscore.storage.warehouse import open_warehouse

    warehouse = open_warehouse(warehouse_url)
    assert warehouse.query(
        "SELECT customer_id, score, run_id, region, plan, contract FROM scores_churn ORDER BY 1"
    ) == [
        (1, 0.2, "scheduled__2026-11-21", "north", "basic", "month-to-month"),
        (2, 0.4, "scheduled__2026-11-21", None, "pro", "two-year"),
        (3, 0.6, "scheduled__2026-11-21", "east", "basic", "one-year"),
    ]
    assert result["reasons_table"] == "score_reasons_churn"
    assert warehouse.query("SELECT customer_id, count(*) FROM score_reasons_churn GROUP BY 1 ORDER BY 1") == [
        (1, 3),
        (2, 3),
        (3, 3),
    ]
    runs = warehouse.query(
        "SELECT try_number, status, rows_in, rows_out, input_checksum, cpu_seconds, cpu_s_per_million_rows "
        "FROM scoring_runs ORDER BY try_number"
    )
    assert [run[:5] for run in runs] == [
        (1, "published", 3, 3, checksum),
        (2, "published", 3, 3, checksum),
    ]
    for *_, cpu_seconds, per_million in runs:
        assert cpu_seconds >= 3.0
        assert per_million == pytest.approx(cpu_seconds / 3 * 1e6)


def test_password_is_kept_out_of_the_result():
    assert publish.redacted("postgresql://writer:s3cret@db:5432/wh") == "postgresql://writer:***@db:5432/wh"
    assert publish.redacted("duckdb:///tmp/w.duckdb") == "duckdb:///tmp/w.duckdb"


def test_a_rerun_with_unchanged_scores_is_a_no_op_unless_forced(warehouse_url, tmp_path):
    """The slice records its input checksum and scores fingerprint; the same again publishes nothing."""
    from batchscore.storage.warehouse import open_warehouse

    settings = load_settings("churn", settings_env(tmp_path, BATCHSCORE_WAREHOUSE_URL=warehouse_url))
    # without context columns: this test fakes the features' input checksum, not a raw partition
    no_context = settings.pipeline.model_copy(
        update={
            "output": type(settings.pipeline.output)(),
            "explain": None,
            "validation": settings.pipeline.validation.model_copy(update={"quarantine": None}),
        }
    )
    settings = settings.model_copy(update={"pipeline": no_context})
    lake = Lake(settings.platform.lake_url)
    features = lake.features_partition("churn", DAY)
    features.mkdir(parents=True)
    pq.write_table(pa.table({"customer_id": [1, 2, 3]}), features / "part-0.parquet")
    (features / "_batchscore.json").write_text(json.dumps({"rows": 3, "input_checksum": "sha-of-raw"}))
    (features / SUCCESS_MARKER).touch()
    scores = scores_file(lake.scores_partition("churn", 1, DAY), [1, 2, 3], [0.2, 0.4, 0.6])
    (scores / "_batchscore.json").write_text(json.dumps({"fingerprint": "fp-1"}))
    (scores / SUCCESS_MARKER).touch()
    warehouse = open_warehouse(warehouse_url)

    def slice_record() -> list[tuple]:
        return warehouse.query(
            "SELECT run_id, row_count, input_checksum, scores_fingerprint, published_at FROM published_slices"
        )

    first = publish.run(settings, DAY, 1, run_id="run-a")
    assert "skipped" not in first
    recorded = slice_record()
    assert [r[:4] for r in recorded] == [("run-a", 3, "sha-of-raw", "fp-1")]

    again = publish.run(settings, DAY, 1, run_id="run-b")
    assert again["skipped"] == publish.UNCHANGED == "already published with the same inputs and model version"
    assert (again["rows"], again["published_by"]) == (3, "run-a")
    assert slice_record() == recorded, "the slice was not rewritten"
    assert {r[0] for r in warehouse.query("SELECT run_id FROM scores_churn")} == {"run-a"}

    forced = publish.run(settings, DAY, 1, run_id="run-c", force=True)
    assert "skipped" not in forced and forced["replaced_rows"] == 3
    assert [r[:4] for r in slice_record()] == [("run-c", 3, "sha-of-raw", "fp-1")]

    # Other scores (another fingerprint) or other inputs are published, never skipped.
    (scores / "_batchscore.json").write_text(json.dumps({"fingerprint": "fp-2"}))
    assert "skipped" not in publish.run(settings, DAY, 1, run_id="run-d")
    (features / "_batchscore.json").write_text(json.dumps({"rows": 3, "input_checksum": "other-raw"}))
    assert "skipped" not in publish.run(settings, DAY, 1, run_id="run-e")
    # Scores without a fingerprint (written before stage fingerprints) are always republished.
    (scores / "_batchscore.json").unlink()
    assert "skipped" not in publish.run(settings, DAY, 1, run_id="run-f")
    assert "skipped" not in publish.run(settings, DAY, 1, run_id="run-g")
    assert slice_record()[0][:4] == ("run-g", 3, "other-raw", None)

    statuses = warehouse.query("SELECT run_id, status FROM scoring_runs ORDER BY recorded_at")
    assert statuses == [
        ("run-a", "published"),
        ("run-b", "unchanged"),
        *[(f"run-{x}", "published") for x in "cdefg"],
    ]


def test_context_comes_only_from_the_raw_partition_the_features_were_built_from(tmp_path):
    settings = load_settings("churn", settings_env(tmp_path))
    lake = Lake(settings.platform.lake_url)
    land_day(lake)
    raw = lake.raw_partition("customers", DAY)
    (raw / "part-1.parquet").write_bytes((raw / "part-0.parquet").read_bytes())  # relanded since
    with pytest.raises(publish.ContextUnavailable, match="changed since the features were built"):
        publish.run(settings, DAY, 1, run_id="r")
    (raw / "part-1.parquet").unlink()
    assert publish.run(settings, DAY, 1, run_id="r")["rows"] == 3


def test_a_context_column_missing_from_the_raw_partition_publishes_nothing(tmp_path):
    settings = load_settings("churn", settings_env(tmp_path))
    lake = Lake(settings.platform.lake_url)
    land_day(lake, {"customer_id": [1, 2, 3], "region": ["a", "b", "c"], "plan": ["p", "p", "p"]})
    with pytest.raises(publish.ContextUnavailable, match="has no column contract"):
        publish.run(settings, DAY, 1, run_id="r")
    from batchscore.storage.warehouse import open_warehouse

    assert open_warehouse(settings.platform.warehouse_url).query("SELECT count(*) FROM published_slices") == [
        (0,)
    ]
