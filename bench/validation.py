"""How fast the three gates run: `python -m bench.validation --rows 1000000`.

Lands one day's raw, features and scores partitions (Parquet, like the pipeline writes them)
in a scratch lake, then times `jobs.validate.run` for each stage: footer read, contract,
Parquet read, the real GX suite and both reports. Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchscore.examples.seed import SeedSpec, customers_snapshot, write_partition
from batchscore.settings import REPO_ROOT, load_settings
from batchscore.storage.lake import Lake

DAY = date(2026, 11, 21)
MODEL_VERSION = 1


def features_of(raw: pa.Table) -> pa.Table:
    """The churn features partition as build_features writes it: the key plus 24 float32 columns."""

    def f32(values: Any) -> pa.Array:
        return pc.cast(values, pa.float32())

    def flag(condition: Any) -> pa.Array:
        return f32(pc.if_else(condition, 1, 0))

    def code(column: str, values: list[str]) -> pa.Array:
        return f32(pc.index_in(raw[column], value_set=pa.array(values)))

    monthly, tenure = raw["monthly_charges"], pc.cast(raw["tenure_months"], pa.float64())
    total = pc.coalesce(raw["total_charges"], pc.multiply(monthly, tenure))
    ratio = pc.divide(total, pc.add(pc.multiply(monthly, pc.max_element_wise(tenure, 1.0)), 1.0))
    plain = [
        "tenure_months",
        "monthly_charges",
        "total_charges",
        "num_support_tickets",
        "avg_session_minutes",
        "sessions_last_30d",
        "days_since_last_login",
        "num_devices",
        "data_usage_gb",
        "late_payments_12m",
        "discount_pct",
        "referrals",
        "nps_score",
        "credit_score",
        "age",
    ]
    columns = {"customer_id": raw["customer_id"], **{c: f32(raw[c]) for c in plain}}
    columns |= {
        "charges_ratio": f32(ratio),
        "has_streaming": flag(raw["has_streaming"]),
        "has_paperless_billing": flag(raw["has_paperless_billing"]),
        "is_business": flag(raw["is_business"]),
        "contract_monthly": flag(pc.equal(raw["contract"], "month-to-month")),
        "contract_two_year": flag(pc.equal(raw["contract"], "two-year")),
        "plan_tier": code("plan", ["basic", "standard", "premium"]),
        "payment_is_check": flag(pc.equal(raw["payment_method"], "check")),
        "region_code": code("region", ["north", "south", "east", "west", "central"]),
    }
    order = list(
        json.loads((REPO_ROOT / "expectations" / "churn" / "features.json").read_text())["meta"]["schema"]
    )
    return pa.table({name: columns[name] for name in order})


def scores_of(raw: pa.Table) -> pa.Table:
    n = raw.num_rows
    return pa.table(
        {
            "customer_id": raw["customer_id"],
            "score": pa.array(np.random.default_rng(1).random(n)),
            "model_version": pa.array(np.full(n, MODEL_VERSION, dtype=np.int64)),
            "run_date": pa.array(np.full(n, np.datetime64(DAY), dtype="datetime64[D]")),
        }
    )


def land(lake: Lake, rows: int) -> None:
    raw, _ = customers_snapshot(SeedSpec(rows=rows, seed=11), DAY)
    write_partition(lake, "customers", DAY, raw)
    for final, table in (
        (lake.features_partition("churn", DAY), features_of(raw)),
        (lake.scores_partition("churn", MODEL_VERSION, DAY), scores_of(raw)),
    ):
        with lake.staged_partition(final) as staging:
            staging.mkdir(parents=True)
            pq.write_table(table, staging / "part-00000.parquet", row_group_size=131_072)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2, help="best of N runs per gate")
    args = parser.parse_args(argv)

    from jobs import validate

    scratch = Path(tempfile.mkdtemp(prefix="bench-validation-"))
    try:
        env = {
            "BATCHSCORE_HOME": str(scratch),
            "BATCHSCORE_LAKE_URL": str(scratch / "lake"),
            "BATCHSCORE_PIPELINES_DIR": str(REPO_ROOT / "pipelines"),
        }
        settings = load_settings("churn", env)
        land(Lake(settings.platform.lake_url), args.rows)
        gates: dict[str, Any] = {}
        for stage in ("raw", "features", "scores"):
            timings = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                result = validate.run(settings, DAY, stage, MODEL_VERSION)
                timings.append(time.perf_counter() - started)
            best = min(timings)
            gates[stage] = {
                "rows": result["rows"],
                "expectations": result["evaluated"],
                "engine": result["engine"],
                "workers": result["workers"],
                "seconds": round(best, 3),
                "rows_per_s": round(result["rows"] / best),
            }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = {
        "benchmark": "validation",
        "rows": args.rows,
        "gates": gates,
        "rows_per_s": {stage: gate["rows_per_s"] for stage, gate in gates.items()},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
