"""A real MLflow tracking server on loopback for the MLflow import tests (mlflow is never patched).

The server is full `mlflow` from its own virtualenv, .venv-mlflow (`make mlflow-server-env`,
built here on first use when missing); the tests talk to it with the client in .venv.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from batchscore.settings import REPO_ROOT

MLFLOW_VENV = REPO_ROOT / ".venv-mlflow"
MLFLOW_BIN = MLFLOW_VENV / "bin" / "mlflow"
START_TIMEOUT_S = 120
# Nothing leaves loopback: neither the server nor the test's client sends usage telemetry.
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def ensure_server_env() -> Path:
    """The server's `mlflow` executable, building .venv-mlflow with make when it is missing."""
    if not (MLFLOW_VENV / ".installed").is_file() or not MLFLOW_BIN.is_file():
        subprocess.run(["make", "--no-print-directory", "mlflow-server-env"], cwd=REPO_ROOT, check=True)
    return MLFLOW_BIN


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """Start an MLflow tracking server storing under `root`; yield its URI; stop it."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        str(ensure_server_env()),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    log_path = root / "mlflow-server.log"
    # The server runs in its own virtualenv: none of this process's Python settings leak into it.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "MLFLOW_"))}
    env.update(NO_TELEMETRY)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(uri, process, log_path)
        yield uri
    finally:
        _stop(process)


def _wait_healthy(uri: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Poll `/health` until the server answers OK; fail with its log when it exits or hangs."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            _stop(process)
            raise RuntimeError(
                f"mlflow server not healthy in {START_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}"
            )
        time.sleep(0.3)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group (uvicorn and its workers); kill it if it lingers.

    Its graceful shutdown waits on the client's kept-alive connections, and its data is thrown away.
    """
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass
