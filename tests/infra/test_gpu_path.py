"""batchscore's GPU path on a real GPU (run by `make gpu-check`; skipped without a GPU).

Device choice, XGBoost scores staged through pinned buffers against the CPU's, one staging for
champion and challenger, the Spark discovery script against nvidia-smi, ONNX Runtime's CUDA
provider. infra/gpu_check.py fails when any of these is skipped on a GPU machine.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess

import numpy as np
import pyarrow as pa
import pytest

from batchscore.models import devices
from batchscore.settings import REPO_ROOT

pytestmark = pytest.mark.skipif(
    not (devices.gpu_available("xgboost") and importlib.util.find_spec("cupy")),
    reason="needs an NVIDIA GPU, xgboost's CUDA build and CuPy (make gpu-check)",
)

NAMES = [f"f{j}" for j in range(8)]


def booster(seed: int = 0):
    """A small binary XGBoost model trained on the CPU."""
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4_000, len(NAMES))).astype(np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.int32)
    params = {"objective": "binary:logistic", "max_depth": 4, "tree_method": "hist", "device": "cpu"}
    return xgb.train(params, xgb.DMatrix(x, label=y, feature_names=NAMES), num_boost_round=30 + seed)


def batches(rows: list[int]) -> list[pa.RecordBatch]:
    """Float32 feature batches of these sizes, with some NaNs."""
    rng = np.random.default_rng(42)
    out = []
    for n in rows:
        x = rng.normal(size=(n, len(NAMES))).astype(np.float32)
        x[::97, 3] = np.nan  # missing values travel as NaN
        out.append(pa.record_batch([pa.array(x[:, j]) for j in range(len(NAMES))], names=NAMES))
    return out


def cpu_scores(model, data: list[pa.RecordBatch]) -> np.ndarray:
    """The reference: the same model predicting on the CPU."""
    from batchscore.models.inference import feature_matrix

    model.set_param({"device": "cpu"})
    return np.concatenate(
        [model.inplace_predict(feature_matrix(b, NAMES), validate_features=False) for b in data]
    )


def test_cuda_resolves_to_a_device():
    assert devices.resolve_device("cuda", "xgboost").startswith("cuda:")
    assert devices.resolve_device("auto", "xgboost").startswith("cuda:")


def test_staged_gpu_scores_match_the_cpu():
    data = batches([1_000, 2_500, 17, 4_096])  # 2_500 and 4_096 are split at max_rows=1_024
    model = booster()
    expected = cpu_scores(model, data)
    got = np.concatenate(list(devices.score_arrow_batches_gpu(data, booster(), NAMES, max_rows=1_024)))
    assert got.shape == expected.shape
    assert float(np.max(np.abs(got - expected))) < 1e-5


def test_one_staging_scores_champion_and_challenger_in_order():
    data = batches([3_000, 500])
    champion, challenger = booster(0), booster(1)
    staged = list(devices.stage_and_score_gpu(data, [champion, challenger], NAMES, max_rows=2_048))
    assert [b.num_rows for b, _ in staged] == [2_048, 952, 500]
    first = np.concatenate([scores[0] for _, scores in staged])
    second = np.concatenate([scores[1] for _, scores in staged])
    assert float(np.max(np.abs(first - cpu_scores(booster(0), data)))) < 1e-5
    assert float(np.max(np.abs(second - cpu_scores(booster(1), data)))) < 1e-5


def test_discovery_script_lists_the_gpus_nvidia_smi_sees():
    smi = shutil.which("nvidia-smi")
    assert smi, "nvidia-smi is on PATH on a GPU machine"
    indices = subprocess.run(
        [smi, "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, check=True
    ).stdout.split()
    script = REPO_ROOT / "infra" / "spark" / "gpu_discovery.sh"
    result = subprocess.run([str(script)], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(result.stdout) == {"name": "gpu", "addresses": indices}


def test_onnxruntime_has_the_cuda_provider():
    ok, why = devices.backend_gpu_support("onnx")
    assert ok, f"{why} (the GPU image installs onnxruntime-gpu, infra/docker/requirements-gpu.txt)"
