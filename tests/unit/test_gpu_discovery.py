"""infra/spark/gpu_discovery.sh prints what Spark's discoveryScript contract expects."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from batchscore.settings import REPO_ROOT

SCRIPT = REPO_ROOT / "infra" / "spark" / "gpu_discovery.sh"


def run_with(bin_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin"}
    return subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False)


def test_prints_the_gpu_addresses_nvidia_smi_lists(tmp_path):
    # This machine has no GPU: a stand-in nvidia-smi answers the one query the script makes.
    fake = tmp_path / "nvidia-smi"
    fake.write_text('#!/bin/sh\n[ "$1" = "--query-gpu=index" ] && printf "0\\n1\\n3\\n"\n')
    fake.chmod(0o755)
    result = run_with(tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"name": "gpu", "addresses": ["0", "1", "3"]}


def test_fails_clearly_without_nvidia_smi(tmp_path):
    result = run_with(tmp_path)
    assert result.returncode != 0
    assert "nvidia-smi not found" in result.stderr
