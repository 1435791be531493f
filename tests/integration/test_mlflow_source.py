"""MLflow models resolve through a real tracking server on loopback (never a patched mlflow).

The test process logs models with the mlflow-skinny client in .venv: an xgboost Booster, an
ONNX model converted from a small LogisticRegression, and a pickled sklearn model (refused).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from batchscore.errors import BadInput
from batchscore.models.mlflow_source import fetch_mlflow_model, is_mlflow_source

pytestmark = pytest.mark.integration

FEATURES = ["tenure", "spend", "visits"]


@dataclass(frozen=True)
class Logged:
    name: str  # the registered model's name
    run_id: str
    artifact_path: str  # the model's name in the run: runs:/RUN_ID/<artifact_path>


def _data() -> tuple[object, np.ndarray]:
    import pandas as pd

    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, len(FEATURES))).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return pd.DataFrame(x, columns=FEATURES), y


def _log(flavor: str, name: str) -> Logged:
    """Log one model under a new run and register it as version 1 of `name`."""
    import mlflow
    from mlflow.models import infer_signature

    frame, y = _data()
    with mlflow.start_run() as run:
        if flavor == "xgboost":
            import xgboost

            booster = xgboost.train(
                {"objective": "binary:logistic", "max_depth": 2}, xgboost.DMatrix(frame, y), 5
            )
            signature = infer_signature(frame, booster.predict(xgboost.DMatrix(frame)))
            info = mlflow.xgboost.log_model(
                booster, name="model", signature=signature, model_format="json", pip_requirements=["xgboost"]
            )
        else:
            from sklearn.linear_model import LogisticRegression

            classifier = LogisticRegression().fit(frame.to_numpy(), y)
            if flavor == "onnx":
                from skl2onnx import to_onnx

                onnx_model = to_onnx(classifier, frame.to_numpy()[:1], target_opset=17)
                info = mlflow.onnx.log_model(onnx_model, name="model", pip_requirements=["onnxruntime"])
            else:
                info = mlflow.sklearn.log_model(
                    classifier,
                    name="model",
                    serialization_format="cloudpickle",
                    pip_requirements=["scikit-learn"],
                )
    version = mlflow.register_model(info.model_uri, name, await_registration_for=0)
    assert version.version == "1"
    return Logged(name=name, run_id=run.info.run_id, artifact_path="model")


@pytest.fixture(scope="module")
def tracking(mlflow_tracking_uri: str) -> dict[str, Logged]:
    """The three models, logged once for the module; each registered model has alias `champion`."""
    import mlflow

    mlflow.set_tracking_uri(mlflow_tracking_uri)
    mlflow.set_experiment("batchscore-import-tests")
    logged = {flavor: _log(flavor, f"churn-{flavor}") for flavor in ("xgboost", "onnx", "sklearn")}
    client = mlflow.MlflowClient()
    for model in logged.values():
        client.set_registered_model_alias(model.name, "champion", "1")
    return logged


def _uris(model: Logged) -> list[str]:
    return [f"models:/{model.name}/1", f"models:/{model.name}@champion", f"runs:/{model.run_id}/model"]


@pytest.mark.parametrize("form", ["version", "alias", "run"])
def test_an_xgboost_model_resolves_downloads_and_predicts(tracking, tmp_path: Path, form: str) -> None:
    import xgboost

    model = tracking["xgboost"]
    uri = dict(zip(["version", "alias", "run"], _uris(model), strict=True))[form]
    fetched = fetch_mlflow_model(uri, tmp_path / "dl")

    assert fetched.format == "xgboost"
    assert fetched.artifact.is_file() and fetched.artifact.is_relative_to(tmp_path / "dl")
    assert fetched.artifact.suffix == ".json"
    assert fetched.run_id == model.run_id
    assert fetched.source == uri
    assert fetched.signature_inputs == FEATURES
    assert fetched.model_uuid and fetched.mlflow_version
    booster = xgboost.Booster()
    booster.load_model(str(fetched.artifact))
    frame, _ = _data()
    predictions = booster.predict(xgboost.DMatrix(frame))
    assert predictions.shape == (200,) and ((predictions >= 0) & (predictions <= 1)).all()


@pytest.mark.parametrize("form", ["version", "alias", "run"])
def test_an_onnx_model_resolves_and_runs(tracking, tmp_path: Path, form: str) -> None:
    import onnxruntime

    model = tracking["onnx"]
    uri = dict(zip(["version", "alias", "run"], _uris(model), strict=True))[form]
    fetched = fetch_mlflow_model(uri, tmp_path / "dl")

    assert fetched.format == "onnx"
    assert fetched.artifact.is_file() and fetched.artifact.suffix == ".onnx"
    assert fetched.run_id == model.run_id
    session = onnxruntime.InferenceSession(str(fetched.artifact), providers=["CPUExecutionProvider"])
    frame, _ = _data()
    labels = session.run(None, {session.get_inputs()[0].name: frame.to_numpy()})[0]
    assert labels.shape == (200,)


def test_a_local_mlflow_folder_works(tracking, tmp_path: Path) -> None:
    import mlflow

    folder = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{tracking['xgboost'].name}/1", dst_path=str(tmp_path / "saved")
        )
    )
    assert is_mlflow_source(str(folder))
    fetched = fetch_mlflow_model(str(folder), tmp_path / "dl")

    assert fetched.format == "xgboost" and fetched.source == str(folder)
    assert fetched.artifact.is_file() and fetched.artifact.is_relative_to(tmp_path / "dl")
    assert fetched.run_id == tracking["xgboost"].run_id  # read from the MLmodel file


@pytest.mark.parametrize("form", ["version", "run"])
def test_a_pickle_flavor_is_refused(tracking, tmp_path: Path, form: str) -> None:
    uri = _uris(tracking["sklearn"])[0 if form == "version" else 2]
    with pytest.raises(
        BadInput,
        match=r"flavor\(s\) python_function, sklearn need pickle to load; batchscore"
        r" accepts MLflow models with the xgboost or onnx flavor",
    ):
        fetch_mlflow_model(uri, tmp_path / "dl")


def test_a_folder_without_mlmodel_and_a_broken_mlmodel_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="has no MLmodel file"):
        fetch_mlflow_model(str(tmp_path / "empty"), tmp_path / "dl")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "MLmodel").write_text("flavors: [unclosed\n")
    with pytest.raises(BadInput, match="is not valid YAML"):
        fetch_mlflow_model(str(tmp_path / "broken"), tmp_path / "dl")


@pytest.mark.parametrize(
    "uri, fragment",
    [
        ("models:/no-such-model/1", "does not resolve"),
        ("models:/churn-xgboost/7", "does not resolve"),
        ("models:/churn-xgboost@nobody", "does not resolve"),
        ("runs:/0123456789abcdef0123456789abcdef/model", "does not resolve"),
        ("models:/churn-xgboost", "is not models:/NAME/VERSION"),
    ],
)
def test_a_uri_that_names_nothing_is_bad_input_quickly(
    tracking, tmp_path: Path, uri: str, fragment: str
) -> None:
    started = time.monotonic()
    with pytest.raises(BadInput, match=fragment) as raised:
        fetch_mlflow_model(uri, tmp_path / "dl")
    assert time.monotonic() - started < 10
    assert "\n" not in str(raised.value)


def test_an_unreachable_tracking_server_is_bad_input_quickly(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    started = time.monotonic()
    with pytest.raises(BadInput, match="cannot reach the MLflow tracking server") as raised:
        fetch_mlflow_model("models:/churn-xgboost/1", tmp_path / "dl", tracking_uri=dead)
    assert time.monotonic() - started < 10
    assert f"MLFLOW_TRACKING_URI={dead}" in str(raised.value) and "models:/churn-xgboost/1" in str(
        raised.value
    )


def test_models_import_registers_an_mlflow_model_with_its_run(
    mlflow_tracking_uri, tmp_path, monkeypatch, capsys
):
    """`batchscore models import --model models:/…` end to end: the version records the URI and run."""
    import mlflow
    import pandas as pd
    import xgboost

    from batchscore.cli import main
    from batchscore.models.registry import ModelRegistry
    from batchscore.storage.lake import Lake
    from features import load_feature_set
    from tests.conftest import settings_env

    names = load_feature_set("features.churn").names
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(300, len(names))).astype(np.float32), columns=names)
    y = (frame["tenure_months"] > 0).astype(int)
    mlflow.set_tracking_uri(mlflow_tracking_uri)
    with mlflow.start_run() as run:
        booster = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(frame, y), 5)
        info = mlflow.xgboost.log_model(
            booster, name="model", model_format="ubj", pip_requirements=["xgboost"]
        )
    mlflow.register_model(info.model_uri, "churn-from-mlflow", await_registration_for=0)
    reference = tmp_path / "reference.parquet"
    frame.assign(customer_id=np.arange(len(frame))).to_parquet(reference, index=False)
    for key, value in {**settings_env(tmp_path), "MLFLOW_TRACKING_URI": mlflow_tracking_uri}.items():
        monkeypatch.setenv(key, value)

    args = ["models", "import", "--pipeline", "churn", "--reference", str(reference), "--alias", "champion"]
    assert main([*args, "--model", "models:/churn-from-mlflow/1"]) == 0, capsys.readouterr()
    version = ModelRegistry(Lake(str(tmp_path / "lake")), "churn_xgb").get(1)
    assert version.metadata["source"]["kind"] == "mlflow"
    assert version.metadata["source"]["uri"] == "models:/churn-from-mlflow/1"
    assert version.metadata["source"]["run_id"] == run.info.run_id
    assert "MLflow run" in (version.path / "model_card.md").read_text()

    capsys.readouterr()
    assert main([*args, "--model", "models:/churn-from-mlflow/9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert ModelRegistry(Lake(str(tmp_path / "lake")), "churn_xgb").versions() == [1]
