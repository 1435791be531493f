"""End to end on the second example: a regression over a table with a string key, whose models
are trained outside batchscore (plain xgboost; scikit-learn exported with skl2onnx), imported
with `batchscore models import`, and scored by the real nightly DAG through Airflow."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from features import load_feature_set
from tests.integration.batchscore_cli import cli, ok
from tests.integration.outside_training import (
    train_sklearn_onnx,
    train_xgboost,
    train_xgboost_multiclass,
    training_frame,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DAY1, DAY2 = date(2026, 11, 20), date(2026, 11, 21)
ROWS = 1500


@pytest.fixture(scope="module")
def home(tmp_path_factory, spark) -> dict[str, object]:
    home = tmp_path_factory.mktemp("deliveries")
    ok(
        cli(
            home,
            "lake",
            "seed",
            "--example",
            "deliveries",
            "--days",
            "8",
            "--rows",
            str(ROWS),
            "--end-date",
            DAY2.isoformat(),
        )
    )
    frame = training_frame(spark, home / "lake")
    models = home / "handed-over"
    models.mkdir()
    xgb_path = train_xgboost(frame, models)
    onnx_path, sklearn_model = train_sklearn_onnx(frame, models)
    (models / "metrics.json").write_text(json.dumps({"holdout_rmse": 9.9, "holdout_mae": 6.1}))
    multiclass = train_xgboost_multiclass(frame, models)
    return {
        "home": home,
        "xgb": xgb_path,
        "onnx": onnx_path,
        "sklearn": sklearn_model,
        "multiclass": multiclass,
    }


def scores(home: Path, version: int | None = None) -> list[tuple]:
    where = f"WHERE model_version = {version}" if version else ""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            f"SELECT shipment_id, run_date, model_version, score FROM scores_deliveries {where} "
            "ORDER BY run_date, shipment_id"
        ).fetchall()


def test_imported_models_score_nightly_with_string_keys(home):
    root: Path = home["home"]  # type: ignore[assignment]
    out = ok(
        cli(
            root,
            "models",
            "import",
            "--pipeline",
            "deliveries",
            "--model",
            str(home["xgb"]),
            "--alias",
            "champion",
            "--metrics",
            str(root / "handed-over" / "metrics.json"),
            "--training-window",
            "2026-11-14:2026-11-18",
            "--note",
            "notebook v1",
        )
    )
    assert "deliveries_xgb v1: xgboost model registered" in out
    assert "drift reference: features of the training window 2026-11-14..2026-11-18" in out
    for day in (DAY1, DAY2):
        run = ok(cli(root, "run", "--pipeline", "deliveries", "--date", day.isoformat()))
        assert "SUCCESS" in run and f"published {ROWS:,}" in run, run
    published = scores(root)
    assert len(published) == 2 * ROWS
    assert all(isinstance(r[0], str) and r[0].startswith("SHP-") for r in published)
    assert len({(r[0], r[1]) for r in published}) == len(published)
    values = np.array([r[3] for r in published])
    assert values.min() > 0 and values.max() > 1, "regression scores are hours, not probabilities"

    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        by_day = con.execute(
            "SELECT run_date, rows, min_score, max_score FROM scores_deliveries_by_day"
        ).fetchall()
        latest = con.execute("SELECT count(*) FROM latest_scores_deliveries").fetchone()
        drift = con.execute("SELECT count(*) FROM drift_metrics WHERE feature = 'score'").fetchone()
    assert [r[:2] for r in by_day] == [(DAY1, ROWS), (DAY2, ROWS)]
    assert latest == (2 * ROWS,) and drift[0] >= 2


def test_an_onnx_model_from_scikit_learn_scores_like_scikit_learn(home):
    root: Path = home["home"]  # type: ignore[assignment]
    out = ok(cli(root, "models", "import", "--pipeline", "deliveries", "--model", str(home["onnx"])))
    assert "deliveries_xgb v2: onnx model registered (model.onnx)" in out
    run = ok(cli(root, "run", "--pipeline", "deliveries", "--date", DAY1.isoformat(), "--model-version", "2"))
    assert "SUCCESS" in run, run

    names = load_feature_set("features.deliveries").names
    part = root / "lake" / "features" / "deliveries" / f"dt={DAY1.isoformat()}"
    features = pq.ParquetDataset([str(f) for f in sorted(part.glob("*.parquet"))]).read().to_pandas()
    features = features.sort_values("shipment_id")
    expected = home["sklearn"].predict(features[names].to_numpy(np.float32))  # type: ignore[attr-defined]
    published = scores(root, version=2)
    assert [r[0] for r in published] == features["shipment_id"].tolist()
    np.testing.assert_allclose([r[3] for r in published], expected, rtol=1e-4, atol=1e-3)


def test_a_multiclass_model_publishes_class_probabilities_and_the_top_class(home):
    root: Path = home["home"]  # type: ignore[assignment]
    out = ok(
        cli(
            root,
            "models",
            "import",
            "--pipeline",
            "delivery_speed",
            "--model",
            str(home["multiclass"]),
            "--alias",
            "champion",
        )
    )
    assert "delivery_speed_xgb v1: xgboost model registered" in out
    run = ok(cli(root, "run", "--pipeline", "delivery_speed", "--date", DAY1.isoformat()))
    assert "SUCCESS" in run and f"published {ROWS:,}" in run, run
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT shipment_id, score, predicted_class, p_fast, p_standard, p_slow FROM scores_delivery_speed"
        ).fetchall()
        shares = con.execute(
            "SELECT share_fast + share_standard + share_slow FROM scores_delivery_speed_by_day"
        ).fetchall()
    assert len(rows) == ROWS
    for _, score, top, *probabilities in rows:
        assert abs(sum(probabilities) - 1) < 1e-3 and score == max(probabilities)
        assert top == ("fast", "standard", "slow")[int(np.argmax(probabilities))]
    assert len({r[2] for r in rows}) >= 2, "a learnable label predicts more than one class"
    assert shares == [(pytest.approx(1.0),)]
