"""`jobs.publish` (what the nightly DAG's publish task runs) on both warehouses, chosen only by URL."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchscore.settings import load_settings
from batchscore.storage.lake import SUCCESS_MARKER, Lake
from jobs import publish
from tests.conftest import settings_env
from tests.warehouse.slices import DAY, reasons_file, scores_file


def test_publish_job_records_every_attempt_with_its_cost(warehouse_url, tmp_path):
    settings = load_settings("churn", settings_env(tmp_path, BATCHSCORE_WAREHOUSE_URL=warehouse_url))
    lake = Lake(settings.platform.lake_url)
    features = lake.features_partition("churn", DAY)
    features.mkdir(parents=True)
    pq.write_table(pa.table({"customer_id": [1, 2, 3]}), features / "part-0.parquet")
    (features / "_batchscore.json").write_text(json.dumps({"rows": 3, "input_checksum": "sha-of-raw"}))
    (features / SUCCESS_MARKER).touch()
    scores = scores_file(lake.scores_partition("churn", 1, DAY), [1, 2, 3], [0.2, 0.4, 0.6])
    (scores / SUCCESS_MARKER).touch()
    reasons_file(
        lake.reasons_partition("churn", 1, DAY), scores, [1, 2, 3]
    )  # churn.yaml has explain: top_k 3

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
    assert warehouse.query("SELECT customer_id, score, run_id FROM scores_churn ORDER BY 1") == [
        (1, 0.2, "scheduled__2026-11-21"),
        (2, 0.4, "scheduled__2026-11-21"),
        (3, 0.6, "scheduled__2026-11-21"),
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
        (1, "published", 3, 3, "sha-of-raw"),
        (2, "published", 3, 3, "sha-of-raw"),
    ]
    for *_, cpu_seconds, per_million in runs:
        assert cpu_seconds >= 3.0
        assert per_million == pytest.approx(cpu_seconds / 3 * 1e6)


def test_password_is_kept_out_of_the_result():
    assert publish.redacted("postgresql://writer:s3cret@db:5432/wh") == "postgresql://writer:***@db:5432/wh"
    assert publish.redacted("duckdb:///tmp/w.duckdb") == "duckdb:///tmp/w.duckdb"
