"""Helpers for tests that run Airflow as services: a fresh PostgreSQL metadata database, a seeded
lake with a trained model, a REST API v2 client authenticated with a JWT from `/auth/token`."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from batchscore.orchestration.airflow_server import ADMIN_USER, passwords_file
from tests.conftest import settings_env

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def fresh_postgres_database(prefix: str = "bs_i7") -> Iterator[str]:
    """Create `<prefix>_<random>` on the local PostgreSQL, yield its psycopg URL, drop it after."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# The nightly DAG's tasks that succeed on a day without drift; `trigger_retrain` is skipped then.
NIGHTLY_TASKS_SUCCEEDING_WITHOUT_DRIFT = {
    "resolve_model",
    "wait_for_partition",
    "validate_raw",
    "build_features",
    "validate_features",
    "score",
    "validate_scores",
    "publish",
    "publish_shadow",
    "evaluate",
    "drift_report",
    "drift_gate",
    "retrain_needed",
    "health_page",
}


def cli(home: Path, *args: str, **env: str) -> str:
    """Run the `batchscore` command against the isolated home; fail the test with its output."""
    command = [str(Path(sys.executable).with_name("batchscore")), *args]
    result = subprocess.run(
        command,
        env={**os.environ, **settings_env(home), "AIRFLOW_HOME": str(home / "airflow-cli"), **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"{args}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def set_admin_password(airflow_home: Path) -> str:
    """Give the simple auth manager's admin a known password before the API starts."""
    password = secrets.token_urlsafe(12)
    airflow_home.mkdir(parents=True, exist_ok=True)
    passwords_file(airflow_home).write_text(json.dumps({ADMIN_USER: password}))
    return password


class AirflowAPI:
    """A tiny REST API v2 client: JWT from `POST /auth/token`, then Bearer auth."""

    def __init__(self, base_url: str, password: str):
        self.base_url = base_url
        token = self._request("POST", "/auth/token", {"username": ADMIN_USER, "password": password}, None)
        self.token = token["access_token"]

    def _request(self, method: str, path: str, body: Any, token: str | None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:2000]!r}") from None

    def get(self, path: str) -> Any:
        return self._request("GET", path, None, self.token)

    def post(self, path: str, body: Any) -> Any:
        return self._request("POST", path, body, self.token)

    def patch(self, path: str, body: Any) -> Any:
        return self._request("PATCH", path, body, self.token)

    def wait_for_dag(self, dag_id: str, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            errors = self.get("/api/v2/importErrors")
            assert errors["total_entries"] == 0, errors
            dags = {d["dag_id"] for d in self.get("/api/v2/dags")["dags"]}
            if dag_id in dags:
                return
            time.sleep(2)
        raise AssertionError(f"{dag_id} was not parsed within {timeout_s}s")

    def wait_for_runs(self, dag_id: str, count: int, timeout_s: float) -> list[dict[str, Any]]:
        """Poll until `count` runs of the DAG are finished; returns them sorted by logical date."""
        deadline = time.monotonic() + timeout_s
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            runs = self.get(f"/api/v2/dags/{dag_id}/dagRuns?order_by=logical_date")["dag_runs"]
            if len(runs) >= count and all(r["state"] in ("success", "failed") for r in runs):
                return runs
            time.sleep(3)
        raise AssertionError(
            f"runs not finished within {timeout_s}s: {[(r['dag_run_id'], r['state']) for r in runs]}"
        )

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        tis = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}
