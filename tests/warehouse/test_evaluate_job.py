"""`jobs.evaluate` on a tiny lake and both warehouses: estimates, realized rows as labels land
late (replaced exactly once), shadow rows, stability, and the thresholds' alerts and events."""

from __future__ import annotations

import json
import logging
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from batchscore.examples.seed import LABELS_SCHEMA, write_partition
from batchscore.settings import REPO_ROOT, load_settings
from batchscore.storage.lake import SUCCESS_MARKER, Lake, PartitionError
from batchscore.storage.warehouse import open_warehouse
from jobs import evaluate, publish
from tests.conftest import settings_env
from tests.warehouse.slices import scores_file

D1, D2, D3 = date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 20)
D1_SCORES = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]  # keys 1..8; contract_monthly 1 for keys 1..4
D2_SCORES = [0.05, 0.95, 0.97, 0.03, 0.96, 0.01, 0.99, 0.5]  # keys 2..9


@pytest.fixture
def settings(warehouse_url, tmp_path):
    config = yaml.safe_load((REPO_ROOT / "pipelines" / "churn.yaml").read_text())
    config["drift"].update(segment_column="contract_monthly", min_segment_rows=3)
    config["performance"] = {"min_roc_auc": 0.75, "trigger_retrain": True, "bootstrap_draws": 50}
    config["stability"] = {"max_decision_flip_share": 0.5}
    # scores published alone: no reason codes or context columns (tested on their own)
    config.pop("explain", None)
    config.pop("output", None)
    config["validation"].pop("quarantine", None)  # features written here come from no raw partition
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "churn.yaml").write_text(yaml.safe_dump(config))
    env = settings_env(tmp_path, BATCHSCORE_WAREHOUSE_URL=warehouse_url)
    return load_settings("churn", {**env, "BATCHSCORE_PIPELINES_DIR": str(tmp_path / "pipelines")})


def publish_day(settings, day, keys, scores, shadow_scores=None):
    lake = Lake(settings.platform.lake_url)
    features = lake.features_partition("churn", day)
    features.mkdir(parents=True)
    segment = [1.0 if k <= 4 else 0.0 for k in keys]
    table = pa.table(
        {"customer_id": pa.array(keys, pa.int64()), "contract_monthly": pa.array(segment, pa.float32())}
    )
    pq.write_table(table, features / "part-0.parquet")
    (features / "_batchscore.json").write_text(json.dumps({"rows": len(keys), "input_checksum": "x"}))
    (features / SUCCESS_MARKER).touch()
    (scores_file(lake.scores_partition("churn", 1, day), keys, scores, run_date=day) / SUCCESS_MARKER).touch()
    publish.run(settings, day, 1, run_id=f"nightly-{day}")
    if shadow_scores is not None:
        shadow = scores_file(
            lake.scores_partition("churn", 2, day), keys, shadow_scores, version=2, run_date=day
        )
        (shadow / SUCCESS_MARKER).touch()
        publish.run_shadow(settings, day, 2, run_id=f"nightly-{day}")


def land_labels(settings, arrival, label_date, labels):
    keys = sorted(labels)
    table = pa.Table.from_arrays(
        [
            pa.array(keys, pa.int64()),
            pa.array([label_date] * len(keys), pa.date32()),
            pa.array([labels[k] for k in keys], pa.int8()),
        ],
        schema=LABELS_SCHEMA,
    )
    write_partition(Lake(settings.platform.lake_url), "churn_labels", arrival, table)


def realized(settings, day, role="champion"):
    return dict(
        (segment, (value, rows, run_id))
        for segment, value, rows, run_id in open_warehouse(settings.platform.warehouse_url).query(
            "SELECT segment, value, row_count, run_id FROM model_performance_churn "
            "WHERE run_date = ? AND kind = 'realized' AND role = ? AND metric = 'roc_auc'",
            [day, role],
        )
    )


def test_estimate_then_late_labels_replace_the_realized_rows_exactly_once(settings, caplog):
    publish_day(settings, D1, list(range(1, 9)), D1_SCORES, shadow_scores=[1 - s for s in D1_SCORES])
    publish_day(settings, D2, list(range(2, 10)), D2_SCORES)
    land_labels(settings, D2, D1, {1: 0, 2: 0, 3: 1, 4: 0, 5: 1, 6: 1})  # keys 1..6 by D2

    first = evaluate.run(settings, D2, run_id="nightly-d2")
    # positives 0.3, 0.6, 0.7 against negatives 0.1, 0.2, 0.4: 2 + 3 + 3 of 9 pairs won
    # (contract_monthly=1, keys 1..4: 0.3 beats 0.1, 0.2, not 0.4 -> 2/3; keys 5, 6: under 3 rows)
    assert realized(settings, D1) == {
        "all": (pytest.approx(8 / 9), 6, "nightly-d2"),
        "contract_monthly=1": (pytest.approx(2 / 3), 4, "nightly-d2"),
    }
    assert first["realized"][D1.isoformat()]["champion"]["rows"] == 6
    assert first["estimated"]["champion"]["rows"] == 8 and first["trigger_retrain"] is False
    # stability of D2 against D1 over keys 2..8: 0.3->0.95, 0.4->0.97, 0.6->0.03, 0.8->0.01 flip: 4 of 7
    stability = first["stability"]
    assert json.loads(json.dumps(first))["stability"]["previous_run_date"] == "2026-11-17"  # XCom-safe
    assert (stability["shared_entities"], stability["new_entities"], stability["gone_entities"]) == (7, 1, 1)
    assert stability["decision_flip_share"] == pytest.approx(4 / 7)
    assert first["stability_breaches"] == ["decision flip share 0.5714 above 0.5"]

    # keys 5..8 land later; key 5's label changes (the later arrival wins)
    land_labels(settings, D3, D1, {5: 0, 6: 1, 7: 1, 8: 0})
    caplog.set_level(logging.WARNING, logger="batchscore.telemetry.alerts")
    for run_id in ("nightly-d3", "nightly-d3-retry"):
        late = evaluate.run(settings, D3, run_id=run_id)
    # labels 0 0 1 0 0 1 1 0: positives 0.3, 0.7, 0.8 win 2 + 4 + 4 of 15 pairs;
    # contract_monthly=1 (keys 1..4): 0.3 beats 0.1, 0.2, not 0.4 -> 2/3;
    # contract_monthly=0 (keys 5..8): 0.7 and 0.8 each beat 0.6, not 0.9 -> 2/4
    assert realized(settings, D1) == {
        "all": (pytest.approx(2 / 3), 8, "nightly-d3-retry"),
        "contract_monthly=0": (pytest.approx(0.5), 4, "nightly-d3-retry"),
        "contract_monthly=1": (pytest.approx(2 / 3), 4, "nightly-d3-retry"),
    }
    assert realized(settings, D1, "shadow")["all"][1] == 8
    warehouse = open_warehouse(settings.platform.warehouse_url)
    counts = warehouse.query(
        "SELECT role, kind, count(*) FROM model_performance_churn WHERE run_date = ? GROUP BY 1, 2 ORDER BY 1, 2",
        [D1],
    )
    # realized binary metrics: roc_auc, log_loss, brier, accuracy and 10 deciles = 14 per segment
    assert counts == [("champion", "realized", 3 * 14), ("shadow", "realized", 3 * 14)]
    assert late["estimated"] == {"skipped": "nothing published for 2026-11-20"}
    assert late["stability"] == {"skipped": "nothing published for 2026-11-20"}
    assert late["performance_breaches"] == ["2026-11-17 realized roc_auc 0.6667 below 0.75"]
    assert late["trigger_retrain"] is True and late["alerted"] is True
    assert "performance beyond its threshold" in caplog.text
    events = warehouse.query("SELECT run_date, event, decision FROM model_events ORDER BY run_date, event")
    assert events == [
        (D2, "performance_gate", "pass"),
        (D2, "stability_gate", "breached"),
        (D3, "performance_gate", "breached"),
    ]


def test_estimates_do_not_depend_on_the_order_rows_were_published_in(settings):
    """The band draws one label per row in order: rows come back in key order, whatever order
    they were published (and stored) in, so the same scores give the same estimate and band."""
    keys = list(range(1, 201))
    scores = [((k * 37) % 100) / 100.0 for k in keys]
    publish_day(settings, D1, keys, scores)
    evaluate.run(settings, D1, run_id="in-order")
    warehouse = open_warehouse(settings.platform.warehouse_url)
    sql = (
        "SELECT metric, value, lower, upper FROM model_performance_churn WHERE run_date = ? "
        "AND kind = 'estimated' AND segment = 'all' ORDER BY metric"
    )
    first = warehouse.query(sql, [D1])
    lake = Lake(settings.platform.lake_url)
    reversed_scores = scores_file(
        lake.scores_partition("churn", 1, D1), keys[::-1], scores[::-1], run_date=D1
    )
    (reversed_scores / SUCCESS_MARKER).touch()
    publish.run(settings, D1, 1, run_id="reversed", force=True)
    evaluate.run(settings, D1, run_id="reversed")
    assert first and warehouse.query(sql, [D1]) == first


def test_a_landed_label_partition_writes_only_realized_rows_once_per_announcement(
    settings, warehouse_url, tmp_path, monkeypatch, capsys
):
    publish_day(settings, D1, list(range(1, 9)), D1_SCORES)
    with pytest.raises(PartitionError, match="churn_labels/dt=2026-11-18 was announced but has not landed"):
        evaluate.run_landed(settings, D2, run_id="outcomes-0")
    land_labels(settings, D2, D1, {1: 0, 2: 0, 3: 1, 4: 0, 5: 1, 6: 1})
    for run_id in ("outcomes-1", "outcomes-2"):  # the partition announced twice
        landed = evaluate.run_landed(settings, D2, run_id=run_id)
    assert landed["label_partition"] == "churn_labels/dt=2026-11-18"
    assert landed["realized"][D1.isoformat()]["champion"]["rows"] == 6
    assert realized(settings, D1)["all"] == (pytest.approx(8 / 9), 6, "outcomes-2")
    counts = open_warehouse(settings.platform.warehouse_url).query(
        "SELECT role, kind, count(*) FROM model_performance_churn GROUP BY 1, 2"
    )
    assert counts == [("champion", "realized", 2 * 14)], "no estimates, one set of realized rows"
    env = settings_env(tmp_path, BATCHSCORE_WAREHOUSE_URL=warehouse_url)
    for name, value in {**env, "BATCHSCORE_PIPELINES_DIR": str(tmp_path / "pipelines")}.items():
        monkeypatch.setenv(name, value)
    evaluate.main(
        ["--pipeline", "churn", "--date", "2026-11-18", "--run-id", "outcomes-3", "--realized-only"]
    )
    assert json.loads(capsys.readouterr().out)["stage"] == "realize"


def test_regression_realizes_rmse_and_mae_and_skips_the_estimate(warehouse_url, tmp_path):
    settings = load_settings("deliveries", settings_env(tmp_path, BATCHSCORE_WAREHOUSE_URL=warehouse_url))
    lake = Lake(settings.platform.lake_url)
    keys = ["SHP-1", "SHP-2", "SHP-3"]
    features = lake.features_partition("deliveries", D1)
    features.mkdir(parents=True)
    pq.write_table(pa.table({"shipment_id": keys}), features / "part-0.parquet")
    (features / "_batchscore.json").write_text(json.dumps({"rows": 3, "input_checksum": "x"}))
    (features / SUCCESS_MARKER).touch()
    scores = lake.scores_partition("deliveries", 1, D1)
    scores.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "shipment_id": keys,
                "score": [10.0, 20.0, 30.0],
                "model_version": pa.array([1, 1, 1], pa.int64()),
                "run_date": pa.array([D1] * 3, pa.date32()),
            }
        ),
        scores / "part-0.parquet",
    )
    (scores / SUCCESS_MARKER).touch()
    publish.run(settings, D1, 1, run_id="nightly")
    outcomes = pa.table(
        {
            "shipment_id": ["SHP-1", "SHP-2", "SHP-3", "SHP-9"],  # SHP-9 was never scored
            "label_date": pa.array([D1] * 4, pa.date32()),
            "delivery_hours": [10.0, 24.0, 27.0, 50.0],
        }
    )
    write_partition(lake, "shipment_outcomes", D2, outcomes)

    result = evaluate.run(settings, D2, run_id="nightly-d2")
    assert result["estimated"] == {"skipped": "estimation applies to binary scores; deliveries is regression"}
    # errors 0, -4, 3: RMSE sqrt((0 + 16 + 9) / 3), MAE (0 + 4 + 3) / 3
    values = dict(
        open_warehouse(warehouse_url).query(
            "SELECT metric, value FROM model_performance_deliveries WHERE kind = 'realized' AND row_count = 3"
        )
    )
    assert values == {"rmse": pytest.approx((25 / 3) ** 0.5), "mae": pytest.approx(7 / 3)}
