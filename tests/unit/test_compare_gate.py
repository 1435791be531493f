"""`batchscore models compare`: a challenger is scored against the champion on labelled lake
data with the metric of the pipeline's task, and promoted only when it passes the gate.

The lakes are built here with pyarrow (features partitions with `_SUCCESS`, label partitions
arriving the day after the day they label); the models are trained with plain xgboost, as a
team outside batchscore would, and registered with `jobs.import_model`.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchscore.cli import main
from batchscore.errors import BadInput
from batchscore.models.promotion import NO_CHAMPION, PROMOTE, REJECT, promotion_decision
from batchscore.models.registry import ModelRegistry
from batchscore.settings import PromotionSettings, Settings, load_settings
from batchscore.storage.lake import Lake
from batchscore.storage.warehouse import open_warehouse
from features import load_feature_set
from jobs.compare import run
from jobs.import_model import ImportRequest
from jobs.import_model import run as import_model
from tests.conftest import settings_env

ROWS = 300
DAYS = (date(2026, 11, 18), date(2026, 11, 19))
INCOMPLETE_DAY = date(2026, 11, 20)  # labelled, but its features partition has no _SUCCESS
CLASSES = ("fast", "standard", "slow")
OBJECTIVES = {"binary": "binary:logistic", "regression": "reg:squarederror", "multiclass": "multi:softprob"}


# --- the decision, task by task ------------------------------------------------------------


def budget(**overrides: float) -> PromotionSettings:
    return PromotionSettings(**overrides)


def test_binary_promotes_on_enough_auc_gain_without_worse_log_loss():
    champion, challenger = (
        {"version": 1, "auc": 0.80, "logloss": 0.45},
        {"version": 2, "auc": 0.81, "logloss": 0.44},
    )
    assert promotion_decision("binary", challenger, champion, budget()) == (PROMOTE, [])


@pytest.mark.parametrize(
    ("challenger", "reason"),
    [
        ({"version": 2, "auc": 0.802, "logloss": 0.44}, "AUC gain +0.0020 < required +0.0050"),
        ({"version": 2, "auc": 0.82, "logloss": 0.46}, "log loss worse: 0.4600 vs 0.4500"),
        ({"version": 2, "auc": float("nan"), "logloss": 0.44}, "AUC gain +nan"),
    ],
)
def test_binary_rejects(challenger, reason):
    champion = {"version": 1, "auc": 0.80, "logloss": 0.45}
    decision, reasons = promotion_decision("binary", challenger, champion, budget())
    assert decision == REJECT and len(reasons) == 1 and reasons[0].startswith(reason)


def test_regression_promotes_when_rmse_is_not_worse_by_default_and_reduced_enough_when_asked():
    champion = {"version": 1, "rmse": 10.0, "mae": 8.0, "bias": 1.0}
    same = {"version": 2, "rmse": 10.0, "mae": 9.0, "bias": -3.0}
    assert promotion_decision("regression", same, champion, budget()) == (PROMOTE, [])
    better = {**same, "rmse": 8.9}
    assert promotion_decision("regression", better, champion, budget(min_rmse_reduction=0.1)) == (PROMOTE, [])


@pytest.mark.parametrize(
    ("rmse", "required", "reason"),
    [
        (10.5, 0.0, "RMSE 10.5000 vs champion 10.0000: reduction -5.00% < required +0.00%"),
        (9.5, 0.1, "RMSE 9.5000 vs champion 10.0000: reduction +5.00% < required +10.00%"),
    ],
)
def test_regression_rejects_an_rmse_not_reduced_enough(rmse, required, reason):
    champion = {"version": 1, "rmse": 10.0, "mae": 8.0, "bias": 0.0}
    challenger = {"version": 2, "rmse": rmse, "mae": 1.0, "bias": 0.0}
    assert promotion_decision("regression", challenger, champion, budget(min_rmse_reduction=required)) == (
        REJECT,
        [reason],
    )


def test_multiclass_promotes_on_lower_log_loss_and_a_small_accuracy_dip():
    champion = {"version": 1, "logloss": 0.80, "accuracy": 0.700}
    challenger = {"version": 2, "logloss": 0.70, "accuracy": 0.696}
    assert promotion_decision("multiclass", challenger, champion, budget()) == (PROMOTE, [])
    assert (
        promotion_decision("multiclass", challenger, champion, budget(min_logloss_reduction=0.1))[0]
        == PROMOTE
    )


@pytest.mark.parametrize(
    ("challenger", "required", "reason"),
    [
        ({"logloss": 0.81, "accuracy": 0.75}, 0.0, "log loss 0.8100 vs champion 0.8000: reduction -1.25%"),
        ({"logloss": 0.76, "accuracy": 0.75}, 0.1, "log loss 0.7600 vs champion 0.8000: reduction +5.00%"),
        (
            {"logloss": 0.70, "accuracy": 0.69},
            0.0,
            "accuracy 0.6900 vs champion 0.7000: down by more than 0.005",
        ),
    ],
)
def test_multiclass_rejects(challenger, required, reason):
    champion = {"version": 1, "logloss": 0.80, "accuracy": 0.700}
    decision, reasons = promotion_decision(
        "multiclass", {"version": 2, **challenger}, champion, budget(min_logloss_reduction=required)
    )
    assert decision == REJECT and len(reasons) == 1 and reasons[0].startswith(reason)


def test_without_a_champion_the_challenger_passes_with_a_note_and_errors_reject():
    challenger = {"version": 2, "rmse": 3.0, "mae": 2.0, "bias": 0.0}
    assert promotion_decision("regression", challenger, None, budget()) == (PROMOTE, [NO_CHAMPION])
    assert NO_CHAMPION == "no champion: the challenger passes on its own"
    broken = {"version": 1, "error": "a binary model; the pipeline is regression"}
    assert promotion_decision("regression", challenger, broken, budget()) == (
        REJECT,
        ["champion v1: a binary model; the pipeline is regression"],
    )


# --- end to end on a tiny lake -------------------------------------------------------------


def features_frame(settings: Settings, seed: int) -> pd.DataFrame:
    feature_set = load_feature_set(settings.pipeline.features)
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        rng.normal(size=(ROWS, len(feature_set.names))).astype(np.float32), columns=feature_set.names
    )
    keys = np.arange(ROWS, dtype=np.int64)
    key = feature_set.entity_key
    data.insert(0, key, [f"SHP-{k:05d}" for k in keys] if key == "shipment_id" else keys)
    return data


def target(task: str, data: pd.DataFrame, seed: int) -> np.ndarray:
    """What the label depends on: the first two features, plus noise."""
    names = [c for c in data.columns[1:3]]
    noise = np.random.default_rng(seed + 1000).normal(scale=0.3, size=len(data))
    signal = data[names[0]].to_numpy() + 0.5 * data[names[1]].to_numpy() + noise
    if task == "binary":
        return (signal > 0).astype(np.int8)
    if task == "regression":
        return 30.0 + 10.0 * signal
    return np.array(CLASSES, dtype=object)[np.digitize(signal, [-0.5, 0.5])]


def write_lake(settings: Settings) -> None:
    """Features of DAYS (complete) and INCOMPLETE_DAY (no _SUCCESS); each day's labels land a day later."""
    lake = Lake(settings.platform.lake_url)
    pipeline = settings.pipeline
    key = pipeline.dataset.entity_key
    for k, day in enumerate((*DAYS, INCOMPLETE_DAY)):
        data = features_frame(settings, seed=k)
        folder = lake.features_partition(pipeline.name, day)
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(data, preserve_index=False), folder / "part-00000.parquet")
        if day != INCOMPLETE_DAY:
            (folder / "_SUCCESS").write_text("")
        label = target(pipeline.model.task, data, seed=k)
        if pipeline.model.task == "multiclass":
            label[:5] = "lost"  # not one of the pipeline's classes: skipped and counted
        labels = pa.table(
            {
                key: data[key].to_list(),
                pipeline.labels.date_column: pa.array([day] * ROWS, pa.date32()),
                pipeline.labels.column: label.tolist(),
            }
        )
        arrived = lake.raw_partition(pipeline.labels.dataset, day + timedelta(days=1))
        arrived.mkdir(parents=True)
        pq.write_table(labels, arrived / "part-00000.parquet")
        (arrived / "_SUCCESS").write_text("")


def train(settings: Settings, tmp: Path, name: str, *, good: bool, reverse: bool = False) -> Path:
    """An XGBoost model trained on the true labels (good) or on shuffled ones (no better than chance)."""
    import xgboost as xgb

    task = settings.pipeline.model.task
    data = features_frame(settings, seed=100)
    label = target(task, data, seed=100)
    if task == "multiclass":
        label = np.array([CLASSES.index(c) for c in label])
    if not good:
        label = np.random.default_rng(7).permutation(label)
    names = list(data.columns[1:])[:: -1 if reverse else 1]
    params = {
        "objective": OBJECTIVES[task],
        "max_depth": 3,
        **({"num_class": 3} if task == "multiclass" else {}),
    }
    booster = xgb.train(
        params, xgb.DMatrix(data[names], label=label, feature_names=names), num_boost_round=30
    )
    path = tmp / f"{name}.json"
    booster.save_model(str(path))
    return path


def setup(
    pipeline: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, champion: str | None = "champion"
) -> Settings:
    env = settings_env(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(pipeline, env)
    write_lake(settings)
    reference = tmp_path / "reference.parquet"
    features_frame(settings, seed=50).to_parquet(reference, index=False)
    models = tmp_path / "models"
    models.mkdir()
    for version, (name, good, alias) in enumerate(
        (("champion", False, champion), ("better", True, None), ("worse", False, None)), start=1
    ):
        model = train(settings, models, name, good=good, reverse=name == "better")
        result = import_model(settings, ImportRequest(str(model), reference_file=reference, alias=alias))
        assert result["version"] == version
    return settings


def events(settings: Settings) -> list[tuple]:
    warehouse = open_warehouse(settings.platform.warehouse_url)
    exists = warehouse.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", ["model_events"]
    )[0][0]
    if not exists:
        return []
    return warehouse.query("SELECT event, model_version, decision FROM model_events ORDER BY recorded_at")


def gate(settings: Settings, capsys, challenger: int, *extra: str) -> tuple[int, str]:
    code = main(
        ["models", "compare", "--pipeline", settings.pipeline.name, "--challenger", str(challenger), *extra]
    )
    return code, capsys.readouterr().out


@pytest.mark.parametrize(
    ("pipeline", "metrics"),
    [
        ("churn", ["auc", "logloss"]),
        ("deliveries", ["rmse", "mae", "bias"]),
        ("delivery_speed", ["logloss", "accuracy"]),
    ],
)
def test_a_better_challenger_is_promoted_and_a_worse_one_rejected(
    pipeline, metrics, tmp_path, monkeypatch, capsys
):
    settings = setup(pipeline, tmp_path, monkeypatch)
    registry = ModelRegistry(Lake(settings.platform.lake_url), settings.pipeline.model.name)

    code, out = gate(settings, capsys, 2)  # no --promote: decided, nothing moved
    assert code == 0 and "decision: PROMOTE" in out and "no alias moved" in out
    assert registry.aliases() == {"champion": 1} and events(settings) == []
    for metric in metrics:
        assert f"\n{metric} " in out

    code, out = gate(settings, capsys, 2, "--promote")
    assert code == 0, out
    assert registry.aliases() == {"champion": 2}
    move = registry.history("champion")[-1]
    assert move["reason"] == "compare gate passed" and move["from_version"] == 1
    assert set(metrics) <= set(move["evidence"]["challenger"])
    assert events(settings) == [("compare_gate", 2, "champion:v1->v2")]

    code, out = gate(settings, capsys, 3, "--promote")
    assert code == 1 and "decision: REJECT" in out
    assert registry.aliases() == {"champion": 2} and len(registry.history("champion")) == 2
    assert len(events(settings)) == 1


def test_the_evaluation_set_joins_complete_features_of_each_labelled_day(tmp_path, monkeypatch):
    settings = setup("delivery_speed", tmp_path, monkeypatch)
    result = run(settings, 2)
    assert result["label_partitions"] == ["2026-11-19", "2026-11-20", "2026-11-21"]
    assert result["feature_days"] == ["2026-11-18", "2026-11-19"]
    assert result["days_without_features"] == ["2026-11-20"]
    assert result["unmatched_labels"] == ROWS and result["skipped_unknown_labels"] == 10
    assert result["rows"] == result["challenger"]["rows"] == 2 * ROWS - 10
    assert result["move"] is None and result["decision"] == PROMOTE

    narrow = run(settings, 2, days=1, end_date=date(2026, 11, 19))
    assert narrow["label_partitions"] == ["2026-11-19"] and narrow["rows"] == ROWS - 5


def test_nothing_labelled_names_what_is_missing(tmp_path, monkeypatch, capsys):
    settings = setup("deliveries", tmp_path, monkeypatch)
    with pytest.raises(BadInput, match="no complete shipment_outcomes partition arrived in the 7 days"):
        run(settings, 2, end_date=date(2026, 10, 1))
    with pytest.raises(BadInput, match=r"label the days 2026-11-20; complete features partitions .*: none"):
        run(settings, 2, days=1)
    assert main(["models", "compare", "--pipeline", "deliveries", "--challenger", "9"]) == 2
    assert "has no version 9" in capsys.readouterr().err


def test_without_a_champion_the_challenger_passes_on_its_own(tmp_path, monkeypatch):
    settings = setup("deliveries", tmp_path, monkeypatch, champion=None)
    registry = ModelRegistry(Lake(settings.platform.lake_url), settings.pipeline.model.name)
    assert registry.aliases() == {}
    result = run(settings, 3, promote=True)
    assert result["champion"] is None and result["reasons"] == [
        "no champion: the challenger passes on its own"
    ]
    assert registry.aliases() == {"champion": 3} and result["move"]["from_version"] is None
