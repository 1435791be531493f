"""The health page's loader on both warehouses: it reads the window's outcome rows of the day's
champion, the day's feature drift without attribution rows, reason codes when their view exists,
and an empty warehouse gives empty sections, not an error; the job writes the page to the lake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from batchscore.quality.health_data import load_health
from batchscore.settings import load_settings
from batchscore.storage.warehouse import RunRecord, ScoresSlice
from tests.conftest import settings_env
from tests.warehouse.slices import DAY, scores_file, target

EARLIER = DAY - timedelta(days=3)
PERFORMANCE_COLUMNS = 14


def execute(warehouse: Any, statement: str, rows: list[list[Any]] | None = None) -> None:
    """Run raw SQL with `?` placeholders on either warehouse (what the outcome writers will do)."""
    postgres = warehouse.dialect == "postgresql"
    if postgres:
        statement = statement.replace("?", "%s")
    with warehouse.connect() as con:
        if not rows:
            con.execute(statement)
        elif postgres:
            con.cursor().executemany(statement, rows)
        else:
            con.executemany(statement, rows)


def performance_row(day, version, role, kind, segment, metric, value, band=None, pipeline="churn"):  # type: ignore[no-untyped-def]
    lower, upper = (value - band, value + band) if band else (None, None)
    return [
        pipeline,
        day,
        "churn_xgb",
        version,
        role,
        kind,
        segment,
        metric,
        value,
        lower,
        upper,
        100,
        "r",
        datetime.now(UTC),
    ]


@pytest.fixture
def churn(tmp_path):  # type: ignore[no-untyped-def]
    return load_settings("churn", settings_env(tmp_path)).pipeline


@pytest.fixture
def month(warehouse, tmp_path):  # type: ignore[no-untyped-def]
    """Published slices, outcome rows, drift metrics and a run, with rows the loader must skip."""
    warehouse.migrate()
    for i, (version, day) in enumerate([(2, EARLIER), (1, EARLIER), (1, DAY)]):
        keys = [1, 2, 3]
        warehouse.publish_scores(
            target(f"run-{i}", version, day),
            scores_file(tmp_path / f"s{i}", keys, [0.1, 0.5, 0.9], version, day),
            expected_rows=len(keys),
        )
    shadow = ScoresSlice("churn", "shadow_scores_churn", "customer_id", DAY, "churn_xgb", 2, "run-s")
    warehouse.publish_scores(
        shadow, scores_file(tmp_path / "sh", [1, 2], [0.2, 0.3], 2, DAY), expected_rows=2
    )
    execute(
        warehouse,
        f"INSERT INTO model_performance VALUES ({', '.join(['?'] * PERFORMANCE_COLUMNS)})",
        [
            performance_row(EARLIER, 1, "champion", "realized", "all", "roc_auc", 0.81),
            performance_row(
                EARLIER, 2, "champion", "realized", "all", "roc_auc", 0.5
            ),  # not that day's champion
            performance_row(EARLIER, 1, "champion", "realized", "contract=monthly", "roc_auc", 0.7),
            performance_row(EARLIER, 2, "shadow", "realized", "all", "roc_auc", 0.83),
            performance_row(DAY, 1, "champion", "estimated", "all", "roc_auc", 0.8, band=0.02),
            performance_row(DAY - timedelta(days=40), 1, "champion", "realized", "all", "roc_auc", 0.9),
            performance_row(DAY, 1, "champion", "realized", "all", "rmse", 3.0, pipeline="deliveries"),
        ],
    )
    execute(
        warehouse,
        "INSERT INTO score_stability VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            ["churn", DAY, 1, EARLIER, 1, 0.02, 0.97, 0.5, 0.01, 3, 0, 0, "r", datetime.now(UTC)],
            ["deliveries", DAY, 1, EARLIER, 1, 0.5, 0.1, 0.5, 0.3, 3, 0, 0, "r", datetime.now(UTC)],
        ],
    )
    metric = {"method": "psi", "segment": "all"}
    warehouse.replace_drift_metrics(
        "churn",
        DAY,
        1,
        [
            {**metric, "feature": "tenure_months", "statistic": 0.05, "threshold": 0.2, "drifted": False},
            {**metric, "feature": "monthly_charges", "statistic": 0.30, "threshold": 0.15, "drifted": True},
            {**metric, "feature": "discount_pct", "statistic": 0.35, "threshold": 0.2, "drifted": True},
            {**metric, "feature": "score", "statistic": 0.04, "threshold": 0.2, "drifted": False},
            {
                **metric,
                "feature": "reasons:tenure_months",
                "method": "attribution",
                "statistic": 9.0,
                "threshold": 0.1,
                "drifted": True,
            },
            {
                **metric,
                "segment": "contract=monthly",
                "feature": "tenure_months",
                "statistic": 5.0,
                "threshold": 0.2,
                "drifted": True,
            },
        ],
    )
    warehouse.record_run(
        RunRecord(run_id="run-2", try_number=1, pipeline="churn", run_date=DAY, model_name="churn_xgb",
                  model_version=1, status="published", rows_in=3, rows_out=3)
    )  # fmt: skip
    return warehouse


def test_the_loader_reads_the_days_champion_over_the_window(month, churn):
    data = load_health(month, churn, DAY, prediction_column="score", window_days=30)
    assert (data.pipeline, data.task, data.model_name, data.model_version) == (
        "churn",
        "binary",
        "churn_xgb",
        1,
    )
    assert data.published_rows == 3 and data.published_at is not None
    assert data.due_at is not None and data.due_at.astimezone(UTC) == datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
    assert data.last_run is not None and (data.last_run.run_id, data.last_run.status) == (
        "run-2",
        "published",
    )
    assert sorted(
        (p.run_date, p.model_version, p.role, p.kind, p.metric, p.value) for p in data.performance
    ) == [
        (EARLIER, 1, "champion", "realized", "roc_auc", 0.81),
        (EARLIER, 2, "shadow", "realized", "roc_auc", 0.83),
        (DAY, 1, "champion", "estimated", "roc_auc", 0.8),
    ]
    estimate = next(p for p in data.performance if p.kind == "estimated")
    assert estimate.lower == pytest.approx(0.78) and estimate.upper == pytest.approx(0.82)
    assert [(s.run_date, s.previous_run_date, s.score_psi, s.rank_correlation) for s in data.stability] == [
        (DAY, EARLIER, 0.02, 0.97)
    ]
    assert [(d.feature, d.drifted) for d in data.drift] == [
        ("monthly_charges", True),  # 2.0 x its threshold
        ("discount_pct", True),  # 1.75 x
        ("tenure_months", False),
    ]
    assert data.score_drift is not None and data.score_drift.statistic == 0.04
    assert not data.reasons_enabled and data.reasons == []


def test_a_short_window_leaves_earlier_days_out(month, churn):
    data = load_health(month, churn, DAY, prediction_column="score", window_days=2)
    assert [(p.run_date, p.kind) for p in data.performance] == [(DAY, "estimated")]


def test_reason_codes_are_read_once_their_view_exists(month, churn):
    execute(
        month,
        'CREATE TABLE reason_rows (customer_id BIGINT, run_date DATE, model_version INTEGER, "rank" INTEGER, '
        "feature VARCHAR, value DOUBLE PRECISION, contribution DOUBLE PRECISION)",
    )
    execute(
        month,
        "INSERT INTO reason_rows VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            [1, DAY, 1, 1, "monthly_charges", 90.0, 0.4],
            [2, DAY, 1, 1, "monthly_charges", 95.0, 0.3],
            [3, DAY, 1, 1, "tenure_months", 2.0, 0.2],
            [1, DAY, 1, 2, "tenure_months", 30.0, 0.1],
            [2, DAY, 1, 2, "tenure_months", 12.0, 0.1],
            [1, DAY, 2, 1, "discount_pct", 5.0, 0.5],  # another version
            [1, EARLIER, 1, 1, "discount_pct", 5.0, 0.5],  # another day
        ],
    )
    execute(month, "CREATE VIEW score_reasons_churn AS SELECT * FROM reason_rows")
    data = load_health(month, churn, DAY, prediction_column="score")
    assert data.reasons_enabled
    assert [(r.feature, r.rows, round(r.share, 4)) for r in data.reasons] == [
        ("monthly_charges", 2, 0.6667),
        ("tenure_months", 1, 0.3333),
    ]


def test_an_empty_warehouse_gives_empty_sections(warehouse, churn):
    warehouse.migrate()
    data = load_health(warehouse, churn, DAY, prediction_column="score")
    assert data.model_version is None and data.published_rows is None and data.last_run is None
    assert (data.performance, data.stability, data.drift, data.reasons) == ([], [], [], [])
    assert data.score_drift is None and not data.reasons_enabled


def test_the_job_writes_the_page_into_the_lake(month, warehouse_url, tmp_path):
    from jobs import health

    settings = load_settings("churn", settings_env(tmp_path, BATCHSCORE_WAREHOUSE_URL=warehouse_url))
    result = health.run(settings, DAY, 1)
    page = tmp_path / "lake" / "reports" / "health" / "churn" / f"dt={DAY}" / "health.html"
    assert result["report"] == str(page) and result["stage"] == "health_page"
    assert (result["realized_days"], result["estimated_days"], result["stability_days"]) == (1, 1, 1)
    assert result["drifted_features"] == ["monthly_charges", "discount_pct"]
    html = page.read_text()
    assert "3 rows published at" in html and "<svg id='chart-roc_auc'" in html
    assert "reason codes not enabled: the warehouse has no score_reasons_churn view" in html


def test_the_job_on_its_own_renders_a_first_day_without_failing(tmp_path, monkeypatch, capsys):
    import json

    from jobs import health

    for name, value in settings_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    health.main(["--pipeline", "churn", "--date", DAY.isoformat()])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["stage"] == "health_page" and result["model_version"] is None
    html = Path(result["report"]).read_text()
    assert "nothing published for this day" in html
    assert "no drift metrics for 2026-11-21 (any model version)" in html
