"""`make gpu-check` (infra/gpu_check.py) fails fast and clearly where there is no GPU."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batchscore.settings import REPO_ROOT

SCRIPT = REPO_ROOT / "infra" / "gpu_check.py"


def run_with_path(bin_dir: Path, out: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "PATH": str(bin_dir)}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, time.perf_counter() - started


def test_fails_fast_without_nvidia_smi(tmp_path):
    result, seconds = run_with_path(tmp_path, tmp_path / "gpu_check.json")
    assert result.returncode != 0
    assert "gpu-check: nvidia-smi not found" in result.stderr
    assert "does not fall back to the CPU" in result.stderr
    assert seconds < 10, "the check fails before importing XGBoost or running anything"
    assert not (tmp_path / "gpu_check.json").exists()


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (
            "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'; exit 9",
            "could not communicate with the NVIDIA driver",
        ),
        ("exit 0", "exit status 0"),
    ],
    ids=["driver-unreachable", "no-gpu-listed"],
)
def test_fails_fast_when_nvidia_smi_sees_no_gpu(tmp_path, script, message):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    result, _ = run_with_path(tmp_path, tmp_path / "gpu_check.json")
    assert result.returncode != 0
    assert "gpu-check: no CUDA device: nvidia-smi lists no GPU" in result.stderr
    assert message in result.stderr
    assert not (tmp_path / "gpu_check.json").exists()
