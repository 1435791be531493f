"""Publish throughput: write-audit-publish of one day's scores to DuckDB and PostgreSQL.

python -m bench.publish --rows 1000000 [--postgres-admin-url postgresql://postgres@127.0.0.1:5432/postgres]

Writes a scores partition like `jobs.score` does, then times the whole publish (read,
audit, stage, swap, commit) into a fresh DuckDB file and a fresh PostgreSQL database
(`bs_bench_<random>`, dropped afterwards): the first publish of the slice, then republishes
that replace it. For reference it also times PostgreSQL's binary COPY alone (the same
stream into a plain table). Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batchscore.storage.warehouse import ScoresSlice, open_warehouse
from batchscore.storage.warehouse.postgres.binary import key_score_rows

DAY = date(2026, 11, 21)


def write_scores(folder: Path, rows: int, files: int = 4) -> Path:
    """A scores partition shaped like Spark's output: a few Parquet files of (key, score, version, date)."""
    rng = np.random.default_rng(7)
    keys = rng.permutation(rows).astype(np.int64) + 1_000_000
    scores = rng.random(rows)
    folder.mkdir(parents=True)
    for part, index in enumerate(np.array_split(np.arange(rows), files)):
        pq.write_table(
            pa.table(
                {
                    "customer_id": keys[index],
                    "score": scores[index],
                    "model_version": pa.array(np.ones(index.size, np.int64)),
                    "run_date": pa.array([DAY] * index.size, pa.date32()),
                }
            ),
            folder / f"part-{part:05d}.parquet",
        )
    return folder


def time_publishes(url: str, scores: Path, rows: int, repeat: int) -> dict[str, Any]:
    warehouse = open_warehouse(url)
    warehouse.migrate()
    runs: list[dict[str, Any]] = []
    for attempt in range(repeat):
        target = ScoresSlice("churn", "scores_churn", "customer_id", DAY, "churn_xgb", 1, f"bench-{attempt}")
        started, cpu_started = time.perf_counter(), time.process_time()
        result = warehouse.publish_scores(target, scores, expected_rows=rows)
        runs.append(
            {
                "seconds": time.perf_counter() - started,
                "cpu_seconds": time.process_time() - cpu_started,
                "stages": dict(result.stage_seconds),
            }
        )
    assert warehouse.query("SELECT count(*), count(DISTINCT run_id) FROM scores_churn") == [(rows, 1)]
    seconds = [run["seconds"] for run in runs]
    return {
        "rows_per_s": round(rows / statistics.median(seconds)),
        "first_publish_s": round(seconds[0], 3),
        "replace_publish_s": [round(s, 3) for s in seconds[1:]],
        "stage_seconds_last": runs[-1]["stages"],
        # this process's CPU (all of DuckDB's work; the client side only for PostgreSQL)
        "client_cpu_s_per_million_rows": round(
            statistics.median(r["cpu_seconds"] for r in runs) / rows * 1e6, 3
        ),
    }


def time_binary_copy(url: str, scores: Path, rows: int, repeat: int) -> int:
    """Rows/s of `COPY ... (FORMAT BINARY)` alone, into a plain (key, score) table."""
    import psycopg

    table = pq.ParquetDataset(sorted(str(p) for p in scores.glob("*.parquet")), partitioning=None).read()
    payload = key_score_rows(table["customer_id"].to_numpy(), table["score"].to_numpy())
    best = float("inf")
    with psycopg.connect(url) as con:
        for _ in range(repeat):
            con.execute("DROP TABLE IF EXISTS copy_alone")
            con.execute(
                "CREATE TABLE copy_alone (customer_id BIGINT NOT NULL, score DOUBLE PRECISION NOT NULL)"
            )
            con.commit()
            started = time.perf_counter()
            with con.cursor().copy("COPY copy_alone FROM STDIN (FORMAT BINARY)") as copy:
                view = memoryview(payload)
                for offset in range(0, len(view), 8 << 20):
                    copy.write(view[offset : offset + (8 << 20)])
            con.commit()
            best = min(best, time.perf_counter() - started)
    return round(rows / best)


def cpu_pressure() -> str | None:
    """Linux PSI: the share of time runnable tasks waited for a CPU (figures are only comparable when low)."""
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="publishes per warehouse (first + replaces)")
    parser.add_argument("--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)

    import psycopg
    from psycopg import sql

    database = f"bs_bench_{uuid.uuid4().hex[:8]}"
    base = args.postgres_admin_url.rsplit("/", 1)[0]
    with tempfile.TemporaryDirectory(prefix="bs_bench_") as tmp:
        scores = write_scores(Path(tmp) / "scores", args.rows)
        duckdb_result = time_publishes(f"duckdb://{Path(tmp) / 'w.duckdb'}", scores, args.rows, args.repeat)
        print(f"duckdb: {duckdb_result}", flush=True)
        with psycopg.connect(args.postgres_admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        try:
            postgres_result = time_publishes(f"{base}/{database}", scores, args.rows, args.repeat)
            print(f"postgres: {postgres_result}", flush=True)
            copy_alone = time_binary_copy(f"{base}/{database}", scores, args.rows, args.repeat)
        finally:
            with psycopg.connect(args.postgres_admin_url, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
                )
    print(
        json.dumps(
            {
                "benchmark": "publish",
                "rows": args.rows,
                "postgres_rows_per_s": postgres_result["rows_per_s"],
                "duckdb_rows_per_s": duckdb_result["rows_per_s"],
                "postgres_binary_copy_alone_rows_per_s": copy_alone,
                "postgres": postgres_result,
                "duckdb": duckdb_result,
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "cpu_pressure": cpu_pressure(),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
