"""`batchscore models import`: models trained elsewhere are checked before anything is written.

Models are trained here with plain xgboost and scikit-learn (exported with skl2onnx), as a
team outside batchscore would, on the churn pipeline's feature names.
"""

from __future__ import annotations

import json
import pickle
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from batchscore.cli import main
from batchscore.errors import BadInput
from batchscore.models.registry import ModelRegistry
from batchscore.settings import Settings
from batchscore.storage.lake import Lake
from features import load_feature_set
from jobs.import_model import ImportRequest, run

NAMES = load_feature_set("features.churn").names
ROWS = 400


def frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(size=(ROWS, len(NAMES))).astype(np.float32), columns=NAMES)
    data.insert(0, "customer_id", np.arange(ROWS, dtype=np.int64))
    return data


def labels(data: pd.DataFrame) -> np.ndarray:
    return (data["tenure_months"] + 0.5 * data["monthly_charges"] > 0).astype(int).to_numpy()


def xgb_model(tmp: Path, names: list[str], objective: str = "binary:logistic", suffix: str = ".json") -> Path:
    import xgboost as xgb

    data = frame()
    for name in names:
        data[name] = data.get(name, data["age"])  # a column the pipeline does not have
    matrix = xgb.DMatrix(data[names].to_numpy(), label=labels(data), feature_names=names)
    booster = xgb.train({"objective": objective, "max_depth": 3}, matrix, num_boost_round=10)
    path = tmp / f"model-{len(list(tmp.iterdir()))}-{objective.replace(':', '_')}{suffix}"
    booster.save_model(str(path))
    return path


def onnx_model(tmp: Path, names: list[str] | None, regressor: bool = False) -> Path:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression, LogisticRegression

    data = frame()
    x = data[NAMES].to_numpy(np.float32)
    model = (
        LinearRegression().fit(x, data["tenure_months"])
        if regressor
        else LogisticRegression().fit(x, labels(data))
    )
    options = None if regressor else {id(model): {"zipmap": False}}
    onx = to_onnx(model, x[:1], options=options, target_opset=15)
    if names:
        entry = onx.metadata_props.add()
        entry.key, entry.value = "feature_names", json.dumps(names)
    path = tmp / f"sk-{'reg' if regressor else 'clf'}-{bool(names)}.onnx"
    path.write_bytes(onx.SerializeToString())
    return path


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    path = tmp_path / "reference.parquet"
    frame(1).to_parquet(path, index=False)
    return path


def registry(settings: Settings) -> ModelRegistry:
    return ModelRegistry(Lake(settings.platform.lake_url), settings.pipeline.model.name)


def test_xgboost_json_is_registered_with_its_source_metrics_and_alias(churn_settings, tmp_path, reference):
    model = xgb_model(tmp_path, NAMES)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"holdout_auc": 0.91, "holdout_logloss": 0.3}))
    result = run(
        churn_settings,
        ImportRequest(
            str(model), alias="champion", metrics_file=metrics, reference_file=reference, note="from nb"
        ),
    )
    version = registry(churn_settings).get(result["version"])
    assert registry(churn_settings).aliases() == {"champion": 1}
    assert result["stored"] == ["model.ubj", "model.json"] and version.backend("xgboost") == "xgboost"
    assert version.metadata["source"]["kind"] == "file" and version.metadata["source"]["path"] == str(model)
    assert len(version.metadata["source"]["sha256"]) == 64
    assert version.metadata["metrics"]["holdout_auc"] == 0.91 and version.metadata["task"] == "binary"
    version.verify()
    card = (version.path / "model_card.md").read_text()
    assert "imported from" in card and "from nb" in card
    move = registry(churn_settings).history("champion")[-1]
    assert move["reason"] == "import: from nb" and move["to_version"] == 1
    ref = pd.read_parquet(version.artifact("reference.parquet"))
    assert list(ref.columns) == ["customer_id", *NAMES, "score"] and ref["score"].between(0, 1).all()


def test_a_permutation_of_the_features_is_recorded_and_scored_in_the_models_order(
    churn_settings, tmp_path, reference
):
    import pyarrow as pa
    import xgboost as xgb

    from batchscore.models.scoring import score_batches
    from batchscore.models.scoring_pass import model_ref

    permuted = list(reversed(NAMES))
    model = xgb_model(tmp_path, permuted, suffix=".ubj")
    result = run(churn_settings, ImportRequest(str(model), reference_file=reference))
    version = registry(churn_settings).get(result["version"])
    assert result["feature_order"] == "permuted" and version.metadata["feature_order"] == permuted
    assert registry(churn_settings).aliases() == {}, "no alias unless --alias"
    data = frame(2)
    ref = model_ref(churn_settings, version)
    scored = next(score_batches([pa.RecordBatch.from_pandas(data)], ref, "customer_id", date(2026, 11, 21)))
    expected = xgb.Booster(model_file=str(model)).inplace_predict(data[permuted].to_numpy())
    np.testing.assert_allclose(scored.column("score").to_numpy(), expected, rtol=1e-6)


def test_an_onnx_classifier_from_scikit_learn_is_scored_with_onnx_runtime(
    churn_settings, tmp_path, reference
):
    result = run(churn_settings, ImportRequest(str(onnx_model(tmp_path, NAMES)), reference_file=reference))
    version = registry(churn_settings).get(result["version"])
    assert result["stored"] == ["model.onnx"]
    assert version.backend("xgboost") == "onnx", (
        "a version without model.ubj is scored with its ONNX artifact"
    )


def test_without_a_reference_the_newest_raw_partition_gives_the_sample(churn_settings, tmp_path, spark):
    from batchscore.examples.seed import SeedSpec, seed_lake

    seed_lake(Lake(churn_settings.platform.lake_url), SeedSpec(rows=300), date(2026, 11, 21), 1)
    result = run(churn_settings, ImportRequest(str(xgb_model(tmp_path, NAMES))))
    assert result["sample"] == "features of raw dt=2026-11-21"
    assert result["reference"] == "features of raw dt=2026-11-21"


def refused(settings: Settings, capsys, monkeypatch, args: list[str], message: str) -> None:
    """The CLI exits 2 with one line naming the problem, and nothing is registered."""
    for name, value in settings_env_of(settings).items():
        monkeypatch.setenv(name, value)
    assert main(["models", "import", "--pipeline", "churn", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert message in err, err
    assert registry(settings).versions() == []


def settings_env_of(settings: Settings) -> dict[str, str]:
    platform = settings.platform
    return {
        "BATCHSCORE_HOME": str(platform.home),
        "BATCHSCORE_LAKE_URL": platform.lake_url,
        "BATCHSCORE_WAREHOUSE_URL": platform.warehouse_url,
    }


def test_refusals_name_what_to_fix_exit_2_and_write_nothing(
    churn_settings, tmp_path, reference, capsys, monkeypatch
):
    ref = ["--reference", str(reference)]
    cases: list[tuple[list[str], str]] = [
        ([xgb_model(tmp_path, NAMES[:-1])], f"missing {NAMES[-1]}"),
        ([xgb_model(tmp_path, [*NAMES[:-1], "shoe_size"])], f"missing {NAMES[-1]}; extra shoe_size"),
        (
            [xgb_model(tmp_path, NAMES, "reg:squarederror")],
            "is regression; the pipeline's model.task is binary",
        ),
        ([onnx_model(tmp_path, NAMES, regressor=True)], "probabilities must be in [0, 1]"),
        ([onnx_model(tmp_path, None)], "does not name its 24 inputs; pass --feature-names"),
    ]
    pickled = tmp_path / "model.bin"
    pickled.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    cases.append(([pickled], "is a pickle"))
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(xgb_model(tmp_path, NAMES).read_bytes()[:500])
    cases.append(([truncated], "not a readable XGBoost model"))
    csv = tmp_path / "weights.csv"
    csv.write_text("a,b\n1,2\n")
    cases.append(([csv], "is not a model batchscore can read"))
    cases.append(([tmp_path / "nowhere.json"], "does not exist"))
    for model, message in cases:
        refused(churn_settings, capsys, monkeypatch, ["--model", str(model[0]), *ref], message)


def test_unnamed_inputs_are_accepted_with_feature_names(churn_settings, tmp_path, reference):
    model = onnx_model(tmp_path, None)
    result = run(
        churn_settings, ImportRequest(str(model), reference_file=reference, feature_names=tuple(NAMES))
    )
    assert result["feature_order"] == "same"
    with pytest.raises(BadInput, match="missing"):
        run(
            churn_settings,
            ImportRequest(str(model), reference_file=reference, feature_names=tuple(NAMES[:-1])),
        )


def network_onnx(tmp: Path, names: list[str], elem: int | None = None, width: int | None = None) -> Path:
    """A small network as `torch.onnx.export` writes one: MatMul, Add, Sigmoid on one float input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT if elem is None else elem
    width = len(names) if width is None else width
    dtype = np.float32 if elem == TensorProto.FLOAT else np.float64
    rng = np.random.default_rng(5)
    weights = numpy_helper.from_array(rng.normal(size=(width, 1)).astype(dtype) * 0.1, "w")
    bias = numpy_helper.from_array(np.zeros(1, dtype), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "w"], ["z"]),
            helper.make_node("Add", ["z", "b"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["probability"]),
        ],
        "net",
        [helper.make_tensor_value_info("input", elem, [None, width])],
        [helper.make_tensor_value_info("probability", elem, [None, 1])],
        [weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "feature_names", ",".join(names)
    path = tmp / f"net-{elem}-{width}.onnx"
    onnx.save(model, str(path))
    return path


def test_a_network_and_an_onnxmltools_tree_ensemble_are_accepted(churn_settings, tmp_path, reference):
    import xgboost as xgb
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    result = run(churn_settings, ImportRequest(str(network_onnx(tmp_path, NAMES)), reference_file=reference))
    assert result["format"] == "onnx" and result["version"] == 1

    booster = xgb.Booster(model_file=str(xgb_model(tmp_path, NAMES)))
    booster.feature_names = None  # onnxmltools names inputs f0..fN: the names come from --feature-names
    trees = convert_xgboost(
        booster, initial_types=[("features", FloatTensorType([None, len(NAMES)]))], target_opset=15
    )
    path = tmp_path / "trees.onnx"
    path.write_bytes(trees.SerializeToString())
    result = run(
        churn_settings, ImportRequest(str(path), reference_file=reference, feature_names=tuple(NAMES))
    )
    assert result["version"] == 2


def test_a_wrong_input_type_or_width_is_refused(churn_settings, tmp_path, reference):
    from onnx import TensorProto

    with pytest.raises(BadInput, match="input input is double, batchscore feeds float32"):
        run(
            churn_settings,
            ImportRequest(str(network_onnx(tmp_path, NAMES, TensorProto.DOUBLE)), reference_file=reference),
        )
    narrow = network_onnx(tmp_path, NAMES, width=len(NAMES) - 1)
    with pytest.raises(BadInput, match="takes 23 inputs but names 24"):
        run(churn_settings, ImportRequest(str(narrow), reference_file=reference))
    assert registry(churn_settings).versions() == []
