"""`batchscore serve` against real warehouses: DuckDB files and PostgreSQL (127.0.0.1:5432).

Most requests go through Starlette's TestClient (the ASGI app in-process); the swap under
load runs uvicorn on a real socket while another process republishes the slice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from batchscore.serving.app import create_app
from batchscore.serving.auth import TokenStore
from batchscore.settings import REPO_ROOT
from batchscore.storage.warehouse import ScoresSlice, open_reader, open_warehouse
from tests.warehouse.conftest import pg_database, pg_url  # noqa: F401  (fixtures)
from tests.warehouse.slices import DAY, scores_file, target

pytestmark = pytest.mark.integration
EARLIER = DAY - timedelta(days=1)


@pytest.fixture(params=["duckdb", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb://{tmp_path / 'w.duckdb'}"
    return str(request.getfixturevalue("pg_url"))


def publish(url: str, folder: Path, keys, scores, version=1, day=DAY, run_id="run-1") -> None:
    files = scores_file(folder / f"{day}-v{version}-{run_id}", keys, scores, version, day)
    open_warehouse(url).publish_scores(target(run_id, version, day), files, len(keys))


def publish_strings(url: str, folder: Path, keys: list[str], scores: list[float]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n = len(keys)
    table = pa.table(
        {
            "order_id": pa.array(keys, pa.string()),
            "score": pa.array(scores, pa.float64()),
            "model_version": pa.array([3] * n, pa.int64()),
            "run_date": pa.array([DAY] * n, pa.date32()),
        }
    )
    pq.write_table(table, folder / "part-0.parquet")
    target = ScoresSlice(
        "deliveries", "scores_deliveries", "order_id", DAY, "eta", 3, "run-s", task="regression"
    )
    open_warehouse(url).publish_scores(target, folder, n)


@pytest.fixture
def published(url: str, tmp_path: Path) -> str:
    """churn: day-1 v1; DAY v1 and v2 (the champion's v2 is served); deliveries: string keys."""
    publish(url, tmp_path, [1, 2, 3], [0.11, 0.12, 0.13], 1, EARLIER, "run-old")
    publish(url, tmp_path, [1, 2, 3, 4], [0.21, 0.22, 0.23, 0.24], 1, DAY, "run-v1")
    publish(url, tmp_path, [1, 2, 3, 4], [0.31, 0.32, 0.33, 0.34], 2, DAY, "run-v2")
    publish_strings(url, tmp_path / "strings", ["a-1", "b-2", "42"], [12.5, 30.0, 7.0])
    return url


def client(url: str, tokens: TokenStore | None = None) -> TestClient:
    return TestClient(create_app(open_reader(url), tokens), raise_server_exceptions=False)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"], body


def test_single_lookups_as_of_and_batches(published: str) -> None:
    c = client(published)
    got = c.get("/v1/pipelines/churn/scores/2").json()
    assert got["score"] == 0.32 and got["model_version"] == 2 and got["run_id"] == "run-v2"
    assert got["run_date"] == str(DAY) and got["model_name"] == "churn_xgb" and got["published_at"]
    assert got["key"] == 2 and got["entity_key"] == "customer_id"
    assert c.get("/v1/pipelines/churn/scores/2", params={"as_of": str(EARLIER)}).json()["score"] == 0.12
    batch = c.post("/v1/pipelines/churn/scores:batch", json={"keys": [1, "4", 99, 1]}).json()
    assert batch["slice"]["model_version"] == 2 and batch["missing"] == [99]
    assert sorted((row["key"], row["score"]) for row in batch["scores"]) == [(1, 0.31), (4, 0.34)]
    strings = c.get("/v1/pipelines/deliveries/scores/a-1").json()
    assert strings["score"] == 12.5 and strings["key"] == "a-1" and strings["model_version"] == 3
    mixed = c.post("/v1/pipelines/deliveries/scores:batch", json={"keys": [42, "b-2", "zz"]}).json()
    assert sorted(row["key"] for row in mixed["scores"]) == ["42", "b-2"] and mixed["missing"] == ["zz"]
    listing = {p["pipeline"]: p for p in c.get("/v1/pipelines").json()["pipelines"]}
    assert listing["churn"]["model_version"] == 2 and listing["churn"]["row_count"] == 4
    assert (
        0 <= listing["churn"]["freshness_hours"] < 1
        and listing["deliveries"]["scores_table"] == "scores_deliveries"
    )
    assert c.get("/v1/pipelines/churn").json()["run_date"] == str(DAY)


def test_etag_and_revalidation(published: str, tmp_path: Path) -> None:
    c = client(published)
    first = c.get("/v1/pipelines/churn/scores/1")
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "max-age=60, must-revalidate"
    again = c.get("/v1/pipelines/churn/scores/1", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag and not again.content
    assert c.post("/v1/pipelines/churn/scores:batch", json={"keys": [1]}).headers["etag"] == etag
    publish(published, tmp_path, [1, 2, 3, 4], [0.5, 0.5, 0.5, 0.5], 2, DAY, "run-v2b")
    changed = c.get("/v1/pipelines/churn/scores/1", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag and changed.json()["score"] == 0.5


def test_every_error_has_one_shape(published: str) -> None:
    c = client(published)
    assert_error(c.get("/v1/pipelines/nope/scores/1"), 404, "unknown_pipeline")
    assert_error(c.get("/v1/pipelines/nope"), 404, "unknown_pipeline")
    assert_error(c.get("/v1/pipelines/churn/scores/999"), 404, "unknown_key")
    assert_error(c.get("/v1/pipelines/churn/scores/abc"), 422, "malformed_key")
    assert_error(c.get("/v1/pipelines/churn/scores/99999999999999999999"), 422, "malformed_key")
    assert_error(c.get("/v1/pipelines/churn/scores/1", params={"as_of": "2026-13-01"}), 422, "bad_date")
    assert_error(
        c.get("/v1/pipelines/churn/scores/1", params={"as_of": "1999-01-01"}), 404, "unknown_pipeline"
    )
    too_many = {"keys": list(range(1001))}
    assert_error(c.post("/v1/pipelines/churn/scores:batch", json=too_many), 413, "too_many_keys")
    assert_error(c.post("/v1/pipelines/churn/scores:batch", json={"keys": ["x"]}), 422, "malformed_key")
    assert_error(c.post("/v1/pipelines/churn/scores:batch", json={"nokeys": 1}), 422, "invalid_request")
    assert_error(c.post("/v1/pipelines/churn/scores:batch", content=b"{"), 422, "invalid_request")
    assert_error(c.get("/v1/nothing-here"), 404, "not_found")


def token_file(tmp_path: Path, tokens: dict[str, list[str]]) -> TokenStore:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({hashlib.sha256(t.encode()).hexdigest(): s for t, s in tokens.items()}))
    return TokenStore(path)


@pytest.mark.parametrize("url", ["duckdb"], indirect=True)
def test_bearer_tokens_and_scopes(published: str, tmp_path: Path) -> None:
    c = client(published, token_file(tmp_path, {"all-secret": ["*"], "churn-secret": ["churn"]}))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        response = c.get("/v1/pipelines/churn/scores/1", headers=headers)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
    churn = {"Authorization": "Bearer churn-secret"}
    assert c.get("/v1/pipelines/churn/scores/1", headers=churn).status_code == 200
    assert_error(c.get("/v1/pipelines/deliveries/scores/a-1", headers=churn), 403, "forbidden")
    assert_error(
        c.post("/v1/pipelines/deliveries/scores:batch", json={"keys": []}, headers=churn), 403, "forbidden"
    )
    shown = c.get("/v1/pipelines", headers=churn).json()["pipelines"]
    assert [p["pipeline"] for p in shown] == ["churn"]
    every = {"Authorization": "Bearer all-secret"}
    assert c.get("/v1/pipelines/deliveries/scores/a-1", headers=every).status_code == 200
    for open_path in ("/healthz", "/readyz", "/openapi.json"):
        assert c.get(open_path).status_code == 200, open_path
    paths = c.get("/openapi.json").json()["paths"]
    assert (
        "/v1/pipelines/{pipeline}/scores:batch" in paths
        and "/v1/pipelines/{pipeline}/scores/{entity_key}" in paths
    )


def test_serve_refuses_to_start_without_tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from batchscore.cli import main

    env = {
        "BATCHSCORE_WAREHOUSE_URL": f"duckdb://{tmp_path / 'w.duckdb'}",
        "BATCHSCORE_SERVE_TOKENS_FILE": "",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        assert main(["serve", "--port", "1"]) == 2
    assert "--insecure-no-auth" in capsys.readouterr().err


class Proxy:
    """A TCP forwarder to PostgreSQL that can be closed (port refused) and reopened on the same port."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.port = target, free_port()
        self.listener: socket.socket | None = None
        self.conns: list[socket.socket] = []

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def stop(self) -> None:
        assert self.listener is not None
        listener, self.listener = self.listener, None
        for sock in [listener, *self.conns]:  # shutdown first: other threads are blocked in accept/recv
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.conns = []

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client_side, _ = listener.accept()
            except OSError:
                return
            if self.listener is not listener:
                client_side.close()
                return
            server_side = socket.create_connection(self.target)
            self.conns += [client_side, server_side]
            for a, b in ((client_side, server_side), (server_side, client_side)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_warehouse_down_then_recovery(published: str, tmp_path: Path) -> None:
    down: Callable[[], object]
    up: Callable[[], object]
    if published.startswith("duckdb://"):
        path = Path(published.removeprefix("duckdb://"))
        c, away = client(published), tmp_path / "moved-away.duckdb"
        down, up = (lambda: path.rename(away)), (lambda: away.rename(path))
    else:
        proxy = Proxy(("127.0.0.1", 5432))
        proxy.start()
        c = client(published.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
        down, up = proxy.stop, proxy.start
    assert c.get("/readyz").status_code == 200 and c.get("/v1/pipelines/churn/scores/1").status_code == 200
    down()
    for path_ in ("/readyz", "/v1/pipelines/churn/scores/1", "/v1/pipelines"):
        response = c.get(path_)
        assert_error(response, 503, "warehouse_unavailable")
        assert response.headers["retry-after"] == "5"
    assert c.get("/healthz").status_code == 200
    up()
    assert c.get("/readyz").status_code == 200
    assert c.get("/v1/pipelines/churn/scores/1").json()["score"] == 0.31


REPUBLISHER = """
import sys, time
from pathlib import Path
from tests.warehouse.slices import scores_file, target
from batchscore.storage.warehouse import open_warehouse
url, folder, rows, generations = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
warehouse = open_warehouse(url)
keys = list(range(rows))
for g in range(1, generations + 1):
    time.sleep(0.4)
    files = scores_file(folder / f"g{g}", keys, [g / 10 + k * 1e-6 for k in keys])
    warehouse.publish_scores(target(f"gen-{g}"), files, rows)
    print(g, time.time(), flush=True)
"""


@pytest.fixture
def live_server(url: str) -> Iterator[str]:
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        create_app(open_reader(url), None), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def test_swap_under_load_serves_one_slice_per_response(url: str, live_server: str, tmp_path: Path) -> None:
    rows, generations = 1000, 4
    publish(url, tmp_path, list(range(rows)), [k * 1e-6 for k in range(rows)], 1, DAY, "gen-0")
    seen: list[tuple[float, int]] = []
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        keys = {"keys": list(range(0, rows, 5))}
        with httpx.Client(base_url=live_server, timeout=10) as http:
            while not stop.is_set():
                started = time.time()
                response = http.post("/v1/pipelines/churn/scores:batch", json=keys)
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                    continue
                body = response.json()
                gens = {int(round(row["score"] * 10 - row["key"] * 1e-5, 6)) for row in body["scores"]}
                if len(gens) != 1 or body["missing"] or f"gen-{next(iter(gens))}" != body["slice"]["run_id"]:
                    failures.append(f"mixed or inconsistent response: {gens} {body['slice']}")
                    continue
                seen.append((started, gens.pop()))

    worker = threading.Thread(target=hammer)
    worker.start()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-c", REPUBLISHER, url, str(tmp_path / "gens"), str(rows), str(generations)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    time.sleep(1.2)
    stop.set()
    worker.join(15)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not failures, failures[:5]
    published_at = {int(g): float(t) for g, t in (line.split() for line in done.stdout.split("\n") if line)}
    assert sorted(published_at) == list(range(1, generations + 1))
    for g, at in published_at.items():
        late = [(t, got) for t, got in seen if t > at + 1.0 and got < g]
        assert not late, f"generation {g} published at {at}, older slices served after 1 s: {late[:3]}"
    assert {got for _, got in seen} >= {0, generations}


def test_schema_fuzz(published: str) -> None:
    """Every operation of /openapi.json, fuzzed: never a 5xx, every error in the one error shape."""
    schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(open_reader(published), None))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def fuzz(case: object) -> None:
            response = case.call()  # type: ignore[attr-defined]
            case.validate_response(response, checks=[not_a_server_error])  # type: ignore[attr-defined]
            if response.status_code >= 400:
                body = response.json()
                assert set(body) == {"error"} and body["error"]["code"], (case, body)

        fuzz()


@pytest.mark.parametrize("url", ["postgresql"], indirect=True)
def test_serves_as_the_read_only_analyst_role(url: str, tmp_path: Path) -> None:
    """The URL the docs give (`batchscore_analyst`, from `warehouse init-roles`) reads, and cannot write."""
    import psycopg

    publish(url, tmp_path, [147, 206], [0.4, 0.6])
    open_warehouse(url).init_roles("batchscore_writer", "batchscore_analyst")
    analyst_url = url.replace("postgresql://postgres@", "postgresql://batchscore_analyst@")
    assert "batchscore_analyst@" in analyst_url
    for doc in ("README.md", "docs/serving.md"):
        assert "analyst role" in (REPO_ROOT / doc).read_text(), doc
    c = client(analyst_url)
    assert c.get("/readyz").status_code == 200
    batch = c.post("/v1/pipelines/churn/scores:batch", json={"keys": [147, 206]}).json()
    assert sorted(row["score"] for row in batch["scores"]) == [0.4, 0.6]
    reader = open_reader(analyst_url)
    with reader.transaction() as query:
        assert query("SELECT current_user", []) == [("batchscore_analyst",)]
    conninfo, schema = url.split("?schema=")
    with psycopg.connect(conninfo.replace("postgres@", "batchscore_analyst@"), autocommit=True) as con:
        con.execute(f'SET search_path TO "{schema}"')
        for write in (
            "DELETE FROM scores_churn",
            "UPDATE scores_churn SET score = 0",
            "INSERT INTO published_slices SELECT * FROM published_slices",
            "CREATE TABLE evil (x int)",
            "DROP TABLE scores_churn",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute(write)


def test_responses_carry_the_latest_contracts_context_columns(url: str, tmp_path: Path) -> None:
    warehouse = open_warehouse(url)
    files = scores_file(tmp_path / "ctx", [1, 2], [0.4, 0.6])
    context = pa.table(
        {
            "customer_id": pa.array([2, 1], pa.int64()),
            "region": pa.array(["south", None]),
            "signup": pa.array([date(2021, 3, 4), date(2020, 1, 2)], pa.date32()),
        }
    )
    warehouse.publish_scores(target(), files, 2, context=context)
    c = client(url)
    got = c.get("/v1/pipelines/churn/scores/2").json()
    assert (got["score"], got["region"], got["signup"]) == (0.6, "south", "2021-03-04")
    batch = c.post("/v1/pipelines/churn/scores:batch", json={"keys": [1, 2]}).json()
    assert sorted((row["key"], row["region"], row["signup"]) for row in batch["scores"]) == [
        (1, None, "2020-01-02"),
        (2, "south", "2021-03-04"),
    ]
