"""Serving throughput: `batchscore serve` over 1M published rows, on PostgreSQL and on DuckDB.

python -m bench.serving [--rows 1000000] [--seconds 15] [--workers 2] [--concurrency 16]

Publishes one slice of `--rows` scores into a fresh DuckDB file and a fresh PostgreSQL
database (`bs_bench_<random>`, dropped afterwards), starts `batchscore serve` (uvicorn,
`--workers` processes, no auth) on each, and drives it for `--seconds` with single lookups of
random keys, then with batches of 1,000 random keys. The load comes from wrk (one thread,
`--concurrency` connections, a Lua script drawing random keys and reporting exact p50/p99 in
its done() hook); without wrk, from a small asyncio + httpx generator in this process. On a
2-core machine the load generator competes with the server for the CPUs. Prints one JSON
object as its last line (with the machine it ran on).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from batchscore.storage.warehouse import ScoresSlice, open_warehouse
from bench.publish import DAY, write_scores

KEY_OFFSET = 1_000_000  # bench.publish's keys: a permutation of range(rows) plus this


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def publish(url: str, scores: Path, rows: int) -> None:
    target = ScoresSlice("churn", "scores_churn", "customer_id", DAY, "churn_xgb", 1, "bench-run")
    open_warehouse(url).publish_scores(target, scores, rows)


def start_server(url: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "BATCHSCORE_SERVE_DB_URL": url, "PYTHONPATH": str(Path(__file__).parent.parent)}
    command = [
        sys.executable,
        "-c",
        "import sys; from batchscore.cli import main; sys.exit(main(sys.argv[1:]))",
        "serve",
        "--insecure-no-auth",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"batchscore serve did not become ready on {base}")


async def drive(base: str, kind: str, rows: int, seconds: float, concurrency: int) -> dict[str, float]:
    """Requests per second and latency percentiles of `concurrency` loops sending `kind` requests."""
    import httpx

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def loop(client: httpx.AsyncClient) -> None:
        nonlocal errors
        rng = random.Random()
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if kind == "single":
                response = await client.get(f"/v1/pipelines/churn/scores/{KEY_OFFSET + rng.randrange(rows)}")
            else:
                keys = [KEY_OFFSET + rng.randrange(rows) for _ in range(1000)]
                response = await client.post("/v1/pipelines/churn/scores:batch", json={"keys": keys})
            if response.status_code != 200:
                errors += 1
            latencies.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        began = time.perf_counter()
        await asyncio.gather(*(loop(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "requests": len(latencies),
        "errors": errors,
    }


WRK_SCRIPT = """
local kind, rows, offset = "%(kind)s", %(rows)d, %(offset)d
math.randomseed(os.time())
function request()
  if kind == "single" then
    return wrk.format("GET", "/v1/pipelines/churn/scores/" .. (offset + math.random(0, rows - 1)))
  end
  local keys = {}
  for i = 1, 1000 do keys[i] = offset + math.random(0, rows - 1) end
  return wrk.format("POST", "/v1/pipelines/churn/scores:batch",
    {["Content-Type"] = "application/json"}, '{"keys":[' .. table.concat(keys, ",") .. ']}')
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,' ..
    '"errors":%%d}\\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def drive_wrk(base: str, kind: str, rows: int, seconds: float, concurrency: int) -> dict[str, float]:
    """wrk's requests per second and exact latency percentiles (from the script's done() hook)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"kind": kind, "rows": rows, "offset": KEY_OFFSET})
    try:
        command = ["wrk", "-t1", f"-c{concurrency}", f"-d{int(seconds)}s", "-s", script.name, base]
        out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60)
    finally:
        os.unlink(script.name)
    line = next(x for x in out.stdout.splitlines() if x.startswith("WRKJSON "))
    got = json.loads(line.removeprefix("WRKJSON "))
    return {
        "requests_per_s": round(got["requests"] / (got["duration_us"] / 1e6), 1),
        "p50_ms": round(got["p50_us"] / 1000, 2),
        "p99_ms": round(got["p99_us"] / 1000, 2),
        "requests": got["requests"],
        "errors": got["errors"],
    }


def machine() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cores": os.cpu_count(), "model_name": model}


def bench_warehouse(url: str, scores: Path, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    publish(url, scores, args.rows)
    published_s = time.perf_counter() - started
    server, base = start_server(url, args.workers)
    try:
        result: dict[str, Any] = {}
        for kind in ("single", "batch"):
            if shutil.which("wrk"):
                result[kind] = drive_wrk(base, kind, args.rows, args.seconds, args.concurrency)
            else:
                result[kind] = asyncio.run(drive(base, kind, args.rows, args.seconds, args.concurrency))
            print(f"{url.split('://')[0]} {kind}: {result[kind]}", file=sys.stderr)
        result["publish_s"] = round(published_s, 2)
        return result
    finally:
        server.terminate()
        server.wait(15)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per request kind")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (one per core)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    import psycopg
    from psycopg import sql

    database = f"bs_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(args.postgres_admin_url, autocommit=True) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    pg_url = args.postgres_admin_url.rsplit("/", 1)[0] + f"/{database}"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
            scores = write_scores(Path(tmp) / "scores", args.rows)
            results = {
                "postgres": bench_warehouse(pg_url, scores, args),
                "duckdb": bench_warehouse(f"duckdb://{Path(tmp) / 'w.duckdb'}", scores, args),
            }
    finally:
        with psycopg.connect(args.postgres_admin_url, autocommit=True) as con:
            con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    results["config"] = {k: getattr(args, k) for k in ("rows", "seconds", "workers", "concurrency")}
    results["config"]["load_generator"] = "wrk -t1" if shutil.which("wrk") else "asyncio+httpx (no wrk)"
    results["machine"] = machine()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
