"""A backfill through the CLI: `batchscore backfill` over `--days` days of `--rows` rows each.

    python -m bench.backfill --days 30 --rows 1000000

In a fresh temporary home: seeds 21 days of 20k rows (training history) and the backfilled
days, trains the first model and creates Airflow's metadata database (not timed), then times
`batchscore backfill --pipeline churn` over the days as an operator runs it (one process, one
DagRun per day). Prints one JSON object as its last line (total seconds, rows/s, each day's
seconds as the command printed them, the peak RSS of the largest process it started) and writes it to
bench/results/backfill.json under `--key` (default: `<days>x<rows>`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.nightly import cli

RESULTS = Path(__file__).resolve().parent / "results"
LAST_DAY = date(2026, 11, 30)  # 30 days from churn's schedule.start_date, 2026-11-01


def run(days: int, rows: int, home: Path) -> dict[str, Any]:
    env = {**os.environ, "BATCHSCORE_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow")}
    first = LAST_DAY - timedelta(days=days - 1)
    history_end = first - timedelta(days=1)
    cli(env, "lake", "seed", "--days", "21", "--rows", "20000", "--end-date", history_end.isoformat())
    cli(env, "lake", "seed", "--days", str(days), "--rows", str(rows), "--end-date", LAST_DAY.isoformat())
    cli(env, "train", "--pipeline", "churn", "--date", (history_end - timedelta(days=3)).isoformat())
    os.environ.update(env)
    from batchscore.orchestration.airflow_run import airflow_environment, ensure_metadata_db

    ensure_metadata_db(airflow_environment(home))
    command = [str(Path(sys.executable).with_name("batchscore")), "backfill", "--pipeline", "churn"]
    command += ["--start", first.isoformat(), "--end", LAST_DAY.isoformat()]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    total = time.perf_counter() - started
    print(done.stdout, flush=True)
    if done.returncode != 0:
        raise SystemExit(f"backfill exited {done.returncode}:\n{done.stderr[-3000:]}")
    per_day = [float(s) for s in re.findall(r"^  \d{4}-\d\d-\d\d  ok in (\d+)s", done.stdout, re.M)]
    return {
        "benchmark": "backfill",
        "days": days,
        "rows_per_day": rows,
        "total_seconds": round(total, 1),
        "rows_per_s": round(days * rows / total),
        "day_seconds": per_day,
        "first_day_seconds": per_day[0] if per_day else None,
        "later_days_mean_seconds": round(sum(per_day[1:]) / len(per_day[1:]), 1)
        if len(per_day) > 1
        else None,
        "summary": done.stdout.strip().splitlines()[-1],
        "peak_rss_largest_process_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "backfill.json")
    parser.add_argument("--key")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    try:
        result = run(args.days, args.rows, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    existing = json.loads(args.out.read_text()) if args.out.exists() else {}
    existing[args.key or f"{args.days}x{args.rows}"] = result
    args.out.write_text(json.dumps(existing, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
