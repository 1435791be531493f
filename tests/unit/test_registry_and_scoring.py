"""Models are data: checksums verified, aliases moved with history, both backends agree."""

import json
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from batchscore.models import devices, scoring
from batchscore.models.devices import resolve_device
from batchscore.models.inference import ModelRef, ScoringError
from batchscore.models.metadata import BadModelMetadata
from batchscore.models.registry import ModelRegistry, RegistryError
from batchscore.models.scoring import score_batches
from batchscore.models.scoring_pass import check_feature_set
from batchscore.models.training import export
from batchscore.storage.lake import Lake
from batchscore.storage.manifest import StageManifest
from features.churn import FEATURE_SET

NAMES = FEATURE_SET.names
DAY = date(2026, 11, 21)


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(NAMES))).astype(np.float32)
    x[rng.random(size=x.shape) < 0.05] = np.nan
    y = (np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 3]) + rng.normal(0, 0.5, n) > 0).astype(int)
    return x, y


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    import xgboost as xgb

    root = tmp_path_factory.mktemp("registry")
    x, y = synthetic(2000)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "nthread": 2},
        xgb.DMatrix(x, label=y, feature_names=NAMES),
        num_boost_round=30,
    )
    artifacts = root / "artifacts"
    artifacts.mkdir()
    diff = export(booster, NAMES, np.nan_to_num(x[:500]), artifacts)
    registry = ModelRegistry(Lake(str(root / "lake")), "churn_xgb")
    meta = {"feature_set": {"name": FEATURE_SET.name, "hash": FEATURE_SET.content_hash, "features": NAMES}}
    version = registry.register(artifacts, meta)
    return registry, version, diff


def ref_for(version, backend: str) -> ModelRef:
    name = {"xgboost": "model.ubj", "onnx": "model.onnx"}[backend]
    return ModelRef(
        model=version.model,
        version=version.version,
        backend=backend,
        artifact_path=str(version.artifact(name)),
        sha256=version.metadata["artifacts"][name]["sha256"],
        feature_names=tuple(NAMES),
    )


def batch_of(x: np.ndarray) -> pa.RecordBatch:
    columns = {"customer_id": pa.array(np.arange(len(x), dtype=np.int64))}
    columns.update({name: pa.array(x[:, j], from_pandas=True) for j, name in enumerate(NAMES)})
    return pa.RecordBatch.from_pydict(columns)


def test_register_records_checksums_and_versions(registered):
    registry, version, _ = registered
    assert version.version == 1
    assert set(version.metadata["artifacts"]) == {"model.ubj", "model.json", "model.onnx"}
    assert all(len(a["sha256"]) == 64 for a in version.metadata["artifacts"].values())
    assert registry.versions() == [1]


def test_backends_agree_on_the_same_model(registered):
    _, version, export_diff = registered
    x, _ = synthetic(3000, seed=1)
    out = {}
    for backend in ("xgboost", "onnx"):
        (batch,) = list(score_batches(iter([batch_of(x)]), ref_for(version, backend), "customer_id", DAY))
        out[backend] = batch.column("score").to_numpy()
        assert batch.schema.names == ["customer_id", "score", "model_version", "run_date"]
        assert batch.column("run_date")[0].as_py() == DAY
    assert export_diff < 1e-5
    assert np.max(np.abs(out["xgboost"] - out["onnx"])) < 1e-5
    assert out["xgboost"].min() >= 0 and out["xgboost"].max() <= 1
    assert np.isnan(x).any(), "missing values reach the model as NaN"


def test_model_loads_once_per_worker(registered):
    _, version, _ = registered
    ref = ref_for(version, "xgboost")
    scoring._SCORERS.clear()
    before = scoring.LOAD_COUNT["loads"]
    x, _ = synthetic(10)
    for _ in range(3):
        list(score_batches(iter([batch_of(x), batch_of(x)]), ref, "customer_id", DAY))
    assert scoring.LOAD_COUNT["loads"] == before + 1


def test_tampered_artifact_is_refused(registered, tmp_path):
    _, version, _ = registered
    ref = ref_for(version, "xgboost")
    copy = tmp_path / "model.ubj"
    copy.write_bytes(Path(ref.artifact_path).read_bytes() + b"\0")
    tampered = ModelRef(**{**ref.__dict__, "artifact_path": str(copy)})
    with pytest.raises(ScoringError, match="fails its checksum"):
        list(score_batches(iter([batch_of(synthetic(5)[0])]), tampered, "customer_id", DAY))


def test_registry_refuses_a_modified_artifact(tmp_path):
    registry = ModelRegistry(Lake(str(tmp_path / "lake")), "m")
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.json").write_text("{}")
    version = registry.register(src, {"feature_set": {"hash": "x", "features": ["a"]}})
    (version.path / "model.json").write_text('{"evil": 1}')
    with pytest.raises(RegistryError, match="fails its checksum"):
        version.artifact("model.json")


def test_registry_validates_metadata_on_register_and_on_read(tmp_path):
    registry = ModelRegistry(Lake(str(tmp_path / "lake")), "m")
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.json").write_text("{}")
    with pytest.raises(
        BadModelMetadata, match=r"metadata of m v1 feature_set: field 'hash' must be a str, found nothing"
    ):
        registry.register(src, {"feature_set": {"features": ["a"]}})
    assert registry.versions() == [], "nothing is registered when the metadata is incomplete"
    version = registry.register(
        src, {"feature_set": {"hash": "h", "features": ["a", "b"]}, "task": "regression"}
    )
    assert (version.meta.task, version.feature_order, version.feature_set_hash) == (
        "regression",
        ("a", "b"),
        "h",
    )
    assert (
        version.meta.artifacts["model.json"].sha256 == version.metadata["artifacts"]["model.json"]["sha256"]
    )
    document = json.loads((version.path / "metadata.json").read_text())
    (version.path / "metadata.json").write_text(json.dumps({**document, "task": "ranking"}))
    with pytest.raises(BadModelMetadata, match=r"versions/1/metadata.json: task 'ranking' is not one of"):
        registry.get(1)
    (version.path / "metadata.json").write_text("{not json")
    with pytest.raises(BadModelMetadata, match="not valid JSON"):
        registry.get(1)


def test_feature_set_mismatch_refuses_to_score(registered):
    _, version, _ = registered
    manifest = StageManifest(feature_set={"hash": "0" * 64})
    with pytest.raises(ScoringError, match="feature set mismatch"):
        check_feature_set(version, manifest, FEATURE_SET.content_hash)
    built = StageManifest(feature_set={"hash": FEATURE_SET.content_hash})
    check_feature_set(version, built, FEATURE_SET.content_hash)


def test_alias_moves_keep_history_and_compare_and_swap(tmp_path):
    registry = ModelRegistry(Lake(str(tmp_path / "lake")), "m")
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.json").write_text("{}")
    v1 = registry.register(src, {"feature_set": {"hash": "x", "features": ["a"]}}).version
    v2 = registry.register(src, {"feature_set": {"hash": "x", "features": ["a"]}}).version
    with pytest.raises(RegistryError, match="no 'champion' alias"):
        registry.resolve("champion")
    registry.move_alias("champion", v1, reason="first", expected_current=None)
    registry.move_alias("champion", v2, reason="better", expected_current=v1)
    with pytest.raises(RegistryError, match="moved concurrently"):
        registry.move_alias("champion", v1, reason="stale writer", expected_current=v1)
    assert registry.resolve("champion").version == v2
    assert [(e["from_version"], e["to_version"], e["reason"]) for e in registry.history()] == [
        (None, v1, "first"),
        (v1, v2, "better"),
    ]
    with pytest.raises(RegistryError, match="has no version 9"):
        registry.move_alias("champion", 9, reason="typo")


@pytest.mark.skipif(devices.gpu_available(), reason="the CPU fallback is what is under test")
def test_device_choice_without_a_gpu():
    assert resolve_device("auto", "xgboost") == "cpu"
    assert resolve_device("cpu", "onnx") == "cpu"
    with pytest.raises(ScoringError, match="no usable GPU"):
        resolve_device("cuda", "xgboost")
