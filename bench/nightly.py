"""A whole nightly run: seed a day, run the nightly DAG for it as `batchscore run` does, time it.

    python -m bench.nightly --rows 1000000

In a fresh temporary home: seeds 21 small days (training history) and the benchmark day with
`--rows` rows, trains the first model through the CLI and creates Airflow's metadata database
(not timed: a machine that runs nightly has both), then runs the churn DAG for
the day in this process through `run_pipeline` (a real DagRun, as `batchscore run`), and times
the stage limits in the same process on the run's own partitions: pyarrow read of the raw and
features Parquet, `inplace_predict` on the in-memory float32 features (all cores), Parquet
write of the scores and a DuckDB insert of them, and the feature set's own SQL expressions run
by DuckDB in this process on the raw partition (features to Parquet: what the features stage
costs without a Spark session; a measurement, not a code path of the pipeline). The stages'
fixed costs they report (Spark session start in build_features, the Evidently report in
drift_report) are kept under `stage_detail_seconds`. Prints one JSON object as its last line
and writes it to bench/results/nightly.json under `--key` (default: the row count).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
RUN_DATE = date(2026, 11, 21)


def cli(env: dict[str, str], *args: str) -> None:
    code = "import sys; from batchscore.cli import main; sys.exit(main(sys.argv[1:]))"
    subprocess.run([sys.executable, "-c", code, *args], env=env, check=True, stdout=subprocess.DEVNULL)


def prepare(home: Path, rows: int) -> dict[str, str]:
    """Seeded lake (21 x 20k history + one day of `rows`) and a trained first model (not timed)."""
    env = {**os.environ, "BATCHSCORE_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow")}
    before = RUN_DATE - timedelta(days=1)
    cli(env, "lake", "seed", "--days", "21", "--rows", "20000", "--end-date", before.isoformat())
    cli(env, "lake", "seed", "--days", "1", "--rows", str(rows), "--end-date", RUN_DATE.isoformat())
    cli(env, "train", "--pipeline", "churn", "--date", (RUN_DATE - timedelta(days=7)).isoformat())
    os.environ.update(env)
    from batchscore.orchestration.airflow_run import airflow_environment, ensure_metadata_db

    ensure_metadata_db(airflow_environment(home))  # an installed machine has its metadata DB
    return env


def parquet_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.parquet"))


def partition_folder(root: Path, token: str) -> Path:
    """The first folder under `root` whose path holds `token` and Parquet files."""
    for path in sorted(root.rglob("*.parquet")):
        if token in str(path):
            return path.parent
    raise FileNotFoundError(f"no Parquet under {root} matching {token}")


def limits(home: Path, rows: int) -> dict[str, float]:
    """Each stage's physical limit, in seconds, on the run's own partitions."""
    import duckdb
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import xgboost as xgb

    from batchscore.settings import load_platform

    lake = Path(load_platform().lake_url.removeprefix("file://"))
    day = f"={RUN_DATE.isoformat()}"
    out: dict[str, float] = {}
    started = time.perf_counter()
    raw = pa.concat_tables(pq.read_table(p) for p in parquet_files(partition_folder(lake / "raw", day)))
    out["read_raw_parquet"] = time.perf_counter() - started
    started = time.perf_counter()
    feats = partition_folder(lake / "features", day)
    table = pa.concat_tables(pq.read_table(p) for p in parquet_files(feats))
    out["read_features_parquet"] = time.perf_counter() - started
    model = next(p for p in sorted(home.rglob("*.ubj")))
    booster = xgb.Booster(model_file=str(model))
    booster.set_param({"nthread": os.cpu_count() or 1})
    names = booster.feature_names or [
        c for c in table.column_names if table.schema.field(c).type != pa.string()
    ]
    matrix = np.column_stack([table.column(n).to_numpy().astype(np.float32) for n in names])
    started = time.perf_counter()
    scores = booster.inplace_predict(np.ascontiguousarray(matrix), validate_features=False)
    out["predict_in_memory"] = time.perf_counter() - started
    scored = pa.table({"entity_id": pa.array(np.arange(len(scores))), "score": pa.array(scores)})
    started = time.perf_counter()
    pq.write_table(scored, home / "limit-scores.parquet", compression="snappy")
    out["write_parquet"] = time.perf_counter() - started
    started = time.perf_counter()
    con = duckdb.connect(str(home / "limit.duckdb"))
    con.execute("CREATE TABLE s AS SELECT * FROM scored")
    con.close()
    out["duckdb_insert"] = time.perf_counter() - started
    out["features_duckdb_in_process"] = duckdb_features(
        home, parquet_files(partition_folder(lake / "raw", day))
    )
    assert raw.num_rows == rows, (raw.num_rows, rows)
    return {k: round(v, 3) for k, v in out.items()}


def duckdb_features(home: Path, files: list[Path]) -> float:
    """Seconds for DuckDB (all cores, this process) to evaluate the churn feature set's SQL
    expressions on the raw files and write the features as snappy Parquet."""
    import duckdb

    from features import load_feature_set

    feature_set = load_feature_set("features.churn")
    key = feature_set.entity_key
    columns = ", ".join(f"CAST({f.expr} AS FLOAT) AS {f.name}" for f in feature_set.features)
    paths = ", ".join(f"'{p}'" for p in files)
    query = f"SELECT CAST({key} AS BIGINT) AS {key}, {columns} FROM read_parquet([{paths}])"
    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count() or 1}")
    started = time.perf_counter()
    con.execute(f"COPY ({query}) TO '{home / 'limit-features.parquet'}' (FORMAT parquet, COMPRESSION snappy)")
    seconds = time.perf_counter() - started
    con.close()
    return seconds


DETAILS = {"build_features": ("spark_session_seconds",), "drift_report": ("report_seconds", "drift_seconds")}


def stage_details(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The fixed costs the stages report inside their seconds (when they report them)."""
    return {
        task: {name: float(results[task][name]) for name in names if name in results[task]}
        for task, names in DETAILS.items()
        if isinstance(results.get(task), dict)
    }


def peak_rss_mb() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"this_process_mb": round(own), "largest_child_mb": round(children)}


def run(rows: int, home: Path) -> dict[str, Any]:
    prepare(home, rows)
    from batchscore.orchestration.airflow_run import run_pipeline
    from batchscore.settings import load_settings

    started = time.perf_counter()
    outcome = run_pipeline(load_settings("churn"), RUN_DATE)
    total = time.perf_counter() - started
    run_peak = peak_rss_mb()  # before the limits below read whole partitions into this process
    if outcome["state"] != "success":
        raise SystemExit(f"nightly run {outcome['state']}: {outcome['errors']}")
    stages = {
        task: round(float(result["seconds"]), 3)
        for task, result in outcome["results"].items()
        if isinstance(result, dict) and "seconds" in result
    }
    print(json.dumps({"stage_seconds": stages, "total_seconds": total}), flush=True)
    stage_limits = limits(home, rows)
    return {
        "benchmark": "nightly",
        "rows": rows,
        "total_seconds": round(total, 3),
        "dag_run_seconds": round(float(outcome["seconds"]), 3),
        "stage_seconds": stages,
        "stage_rows_per_s": {k: round(rows / v) for k, v in stages.items() if v > 0},
        "stage_seconds_sum": round(sum(stages.values()), 3),
        "stage_detail_seconds": stage_details(outcome["results"]),
        "limits_seconds": stage_limits,
        "limits_sum_seconds": round(sum(stage_limits.values()), 3),
        "limits_note": "features_duckdb_in_process: the feature set's SQL run by DuckDB in this process",
        "peak_rss": {**peak_rss_mb(), "during_run": run_peak},
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "nightly.json")
    parser.add_argument("--key", help="the entry of --out to write (default: the row count)")
    parser.add_argument("--note", help="a note stored with the entry")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="bench-nightly-"))
    try:
        result = run(args.rows, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    existing = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.note:
        result["note"] = args.note
    existing[args.key or str(args.rows)] = result
    args.out.write_text(json.dumps(existing, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
