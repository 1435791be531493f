"""Simulated weeks of a model's life, asserted on the warehouse and the registry.

A lake is seeded with drift from day X. Nightly runs before X pass the drift gate; the
run on X (a real Airflow DagRun) detects the drift and triggers the retrain DAG with the
evidence as conf; the retrain trains a challenger on post-drift labels, which beats the
champion on the same holdout and is promoted (auto-promotion on in this pipeline). The
next nightly run scores with it, a backfill of a day before X still uses the old
version, and a one-command rollback restores it for the next run. The registry's clock is
simulated (one instant per simulated day) so that "the alias as it stood on day D" is
meaningful; every other part is real (Spark, XGBoost, DuckDB, Airflow, Evidently).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from batchscore.cli import main as cli_main
from batchscore.examples.seed import SeedSpec, seed_lake
from batchscore.models import registry as registry_module
from batchscore.models.registry import ModelRegistry
from batchscore.settings import REPO_ROOT, Settings, load_settings
from batchscore.storage.lake import Lake
from batchscore.storage.warehouse import open_warehouse
from tests.conftest import settings_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

START, DRIFT_FROM, END = date(2026, 10, 1), date(2026, 10, 15), date(2026, 10, 25)
ROWS = 2000


class SimulatedClock:
    def __init__(self) -> None:
        self.at = datetime.combine(START, datetime.min.time(), tzinfo=UTC)

    def set(self, day: date, hour: int = 12) -> None:
        self.at = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


def scenario_pipeline(folder: Path) -> None:
    """churn.yaml, smaller and faster, with auto-promotion and contract segments."""
    config = yaml.safe_load((REPO_ROOT / "pipelines" / "churn.yaml").read_text())
    config["drift"].update(segment_column="contract_monthly", min_segment_rows=300, report_sample_rows=1000)
    config["training"].update(
        num_boost_round=60, max_rows=50_000, reference_sample_rows=3000, retrain_after_days=6
    )
    config["training"]["params"] = {"max_depth": 4, "eta": 0.15, "nthread": 2}
    config["promotion"] = {
        "auto": True,
        "min_auc_gain": 0.005,
        "segment_auc_tolerance": 0.03,
        "min_rows_per_s": 5000,
    }
    config["schedule"].update(start_date=START.isoformat(), retries=0)
    folder.mkdir(parents=True)
    (folder / "churn.yaml").write_text(yaml.safe_dump(config))


def nightly(settings: Settings, day: date, spark, model_version: int | None = None) -> dict:
    """The nightly DAG's stages in-process (the Airflow wiring is exercised on day X)."""
    from jobs import build_features, drift, gate, publish, resolve_model, score, validate

    run_id = f"scheduled__{day.isoformat()}"
    model = resolve_model.run(settings, day, model_version, run_id=run_id)
    version = model.model_version
    validate.run(settings, day, "raw")  # the quarantine's verdict: which rows go on
    build_features.run(settings, day, spark)
    score.run(settings, day, version, spark)
    publish.run(settings, day, version, run_id=run_id, model_source=model.source)
    measured = drift.run(settings, day, version)
    return {
        "model": model.to_xcom(),
        "gate": gate.run(settings, day, version, run_id, measured.evidence).to_xcom(),
    }


def test_drift_retrain_promote_backfill_rollback(spark, tmp_path, monkeypatch):
    clock = SimulatedClock()
    monkeypatch.setattr(registry_module, "now", clock)
    scenario_pipeline(tmp_path / "pipelines")
    env = settings_env(tmp_path, BATCHSCORE_PIPELINES_DIR=str(tmp_path / "pipelines"))
    for key, value in {**env, "AIRFLOW_HOME": str(tmp_path / "airflow")}.items():
        monkeypatch.setenv(key, value)
    settings = load_settings("churn")
    lake = Lake(settings.platform.lake_url)
    seed_lake(lake, SeedSpec(rows=ROWS, seed=11, drift_from=DRIFT_FROM), END, (END - START).days + 1)
    registry = ModelRegistry(lake, "churn_xgb")
    warehouse = open_warehouse(settings.platform.warehouse_url)

    from jobs import retrain, train

    # Week 1: the first model, trained on labels landed by Oct 10, becomes the champion.
    clock.set(date(2026, 10, 10))
    assert train.run(settings, date(2026, 10, 10), spark=spark)["promoted"]

    # Nights before the drift pass the gate.
    for day in (date(2026, 10, 12), date(2026, 10, 13)):
        clock.set(day + timedelta(days=1), hour=1)
        night = nightly(settings, day, spark)
        assert night["model"]["model_version"] == 1
        assert night["gate"]["decision"] == "pass", night["gate"]["reasons"]

    # Day X through the real nightly DAG: the gate fires and triggers the retrain DAG.
    from batchscore.orchestration.airflow_run import run_pipeline

    clock.set(DRIFT_FROM + timedelta(days=1), hour=1)
    outcome = run_pipeline(settings, DRIFT_FROM)
    assert outcome["state"] == "success", outcome["errors"]
    gate_result = outcome["results"]["drift_gate"]
    assert gate_result["decision"] == "retrain_recommended" and gate_result["trigger_retrain"]
    triggered = triggered_retrain_runs()
    assert [(r["run_id"], r["logical_date"]) for r in triggered] == [("drift__2026-10-15", "2026-10-15")]
    conf = triggered[0]["conf"]
    assert conf["evidence"]["run_date"] == "2026-10-15" and conf["evidence"]["reasons"]

    # The retrain the gate asked for, with the conf it was given, a week of labels later.
    clock.set(date(2026, 10, 22))
    decision = retrain.run(
        settings,
        DRIFT_FROM,
        drift_from=DRIFT_FROM,
        evidence=conf["evidence"],
        run_id="drift__2026-10-15",
        spark=spark,
    )
    assert decision["decision"] == "promoted", decision["reasons_against"]
    assert decision["challenger"]["auc"] >= decision["champion"]["auc"] + 0.005
    assert registry.aliases() == {"champion": 2, "challenger": 2}
    v2 = registry.get(2).metadata
    assert v2["training_window"]["start"] >= DRIFT_FROM.isoformat(), "challenger learns post-drift data"
    assert v2["training_window"]["labels_landed_by"] == "2026-10-21"
    assert (registry.get(2).path / "model_card.md").read_text().startswith("# Model card: churn_xgb v2")

    # The next night scores with v2; a backfill of a day before X still uses v1.
    clock.set(date(2026, 10, 24), hour=1)
    assert nightly(settings, date(2026, 10, 23), spark)["model"]["model_version"] == 2
    backfill = nightly(settings, date(2026, 10, 12), spark)["model"]
    assert (backfill["model_version"], backfill["source"]) == (1, "alias:champion@2026-10-12")

    # One command rolls back; the next night uses v1 again; the history shows both moves.
    clock.set(date(2026, 10, 24), hour=9)
    assert cli_main(["models", "rollback", "--pipeline", "churn", "--reason", "scenario"]) == 0
    clock.set(date(2026, 10, 25), hour=1)
    assert nightly(settings, date(2026, 10, 24), spark)["model"]["model_version"] == 1
    moves = [(m["from_version"], m["to_version"]) for m in registry.history("champion")]
    assert moves == [(None, 1), (1, 2), (2, 1)]

    # The warehouse tells the same story.
    scored = warehouse.query(
        "SELECT run_date, model_version, count(*) FROM scores_churn GROUP BY ALL ORDER BY run_date, model_version"
    )
    assert scored == [
        (date(2026, 10, 12), 1, ROWS),
        (date(2026, 10, 13), 1, ROWS),
        (DRIFT_FROM, 1, ROWS),
        (date(2026, 10, 23), 2, ROWS),
        (date(2026, 10, 24), 1, ROWS),
    ]
    sources = warehouse.query(
        "SELECT run_date, model_version, model_source, status FROM scoring_runs "
        "WHERE status IN ('published', 'unchanged') ORDER BY recorded_at"
    )
    # The backfill of 10-12 found it published with the same inputs and v1: a no-op.
    assert sources[-3:] == [
        (date(2026, 10, 23), 2, "alias:champion@2026-10-23", "published"),
        (date(2026, 10, 12), 1, "alias:champion@2026-10-12", "unchanged"),
        (date(2026, 10, 24), 1, "alias:champion@2026-10-24", "published"),
    ]
    gates = dict(
        warehouse.query(
            "SELECT run_date, decision FROM model_events WHERE event = 'drift_gate' AND model_version = 1"
        )
    )
    assert gates[date(2026, 10, 13)] == "pass" and gates[DRIFT_FROM] == "retrain_recommended"
    promotion = warehouse.query(
        "SELECT model_version, decision, evidence FROM model_events WHERE event = 'promotion_gate'"
    )
    assert [(v, d) for v, d, _ in promotion] == [(2, "promoted")]
    assert json.loads(promotion[0][2])["champion"]["version"] == 1
    segments = warehouse.query(
        "SELECT DISTINCT segment FROM drift_metrics WHERE run_date = ? ORDER BY segment", [DRIFT_FROM]
    )
    assert segments == [("all",), ("contract_monthly=0",), ("contract_monthly=1",)]


def triggered_retrain_runs() -> list[dict]:
    """DagRuns of the retrain DAG in the Airflow metadata DB (what the trigger created)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    assert os.environ["AIRFLOW_HOME"]
    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "batchscore_churn_retrain").all()
        return [
            {"run_id": r.run_id, "logical_date": r.logical_date.date().isoformat(), "conf": r.conf}
            for r in runs
        ]
