"""The `batchscore` command run as a user runs it: a subprocess against an isolated home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import settings_env


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(home), "AIRFLOW_HOME": str(home / "airflow")}
    command = [str(Path(sys.executable).with_name("batchscore")), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The command's stdout; fails the test with both streams' tails when it exited non-zero."""
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result.stdout
