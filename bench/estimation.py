"""How far the estimated (CBPE) performance was from the realized one, on days with and without drift.

    .venv/bin/python -m bench.estimation [--rows 100000] [--drift-from 2026-11-19]

Seeds a fresh example lake in a temporary home (labels land 3 days late), trains churn v1 on
labels landed by 2026-11-14, then for each day from 2026-11-15 to 2026-11-21 builds features,
scores and publishes (the nightly stages without the gates, in-process on one Spark session)
and runs `jobs.evaluate` for that day (the day's estimate); a last evaluation on 2026-11-24
realizes every day once its labels have landed. Prints one JSON object as its last line, per
day: estimated and realized ROC AUC and accuracy, their absolute gap, whether the realized
value fell in the estimate's 95% band, and whether the day was drifted. Writes
bench/results/estimation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

FIRST, LAST, TRAIN_END, LABELS_BY = (
    date(2026, 11, 15),
    date(2026, 11, 21),
    date(2026, 11, 14),
    date(2026, 11, 24),
)


def environment(home: Path) -> dict[str, str]:
    from batchscore.settings import REPO_ROOT

    return {
        "BATCHSCORE_HOME": str(home),
        "BATCHSCORE_LAKE_URL": str(home / "lake"),
        "BATCHSCORE_WAREHOUSE_URL": f"duckdb://{home / 'warehouse.duckdb'}",
        "BATCHSCORE_PIPELINES_DIR": str(REPO_ROOT / "pipelines"),
        "BATCHSCORE_SPARK_MASTER": "local[2]",
    }


def nightly_days(settings: Any, spark: Any) -> None:
    """Features, scores and publish for each day, then that day's evaluation (its estimate)."""
    from jobs import build_features, evaluate, publish, score, validate

    day = FIRST
    while day <= LAST:
        validate.run(settings, day, "raw")  # the quarantine's verdict: which rows go on
        build_features.run(settings, day, spark=spark)
        score.run(settings, day, 1, spark=spark)
        publish.run(settings, day, 1, run_id=f"bench-{day}")
        evaluate.run(settings, day, run_id=f"bench-{day}")
        day += timedelta(days=1)


def compare(settings: Any, drift_from: date | None) -> list[dict[str, Any]]:
    """Per day and metric: estimate, band, realized value and the gap."""
    from batchscore.storage.warehouse import open_warehouse

    rows = open_warehouse(settings.platform.warehouse_url).query(
        "SELECT run_date, metric, kind, value, lower, upper, row_count FROM model_performance_churn "
        "WHERE role = 'champion' AND segment = 'all' AND metric IN ('roc_auc', 'accuracy') ORDER BY 1, 2"
    )
    found: dict[tuple[date, str], dict[str, Any]] = {}
    for day, metric, kind, value, lower, upper, count in rows:
        entry = found.setdefault((day, metric), {"day": day.isoformat(), "metric": metric})
        entry[kind] = round(value, 4)
        if kind == "estimated":
            entry["band"] = [round(lower, 4), round(upper, 4)]
        else:
            entry["labeled_rows"] = count
    out = []
    for (day, _), entry in sorted(found.items()):
        if "estimated" in entry and "realized" in entry:
            entry["abs_gap"] = round(abs(entry["estimated"] - entry["realized"]), 4)
            entry["in_band"] = entry["band"][0] <= entry["realized"] <= entry["band"][1]
        entry["drifted"] = drift_from is not None and day >= drift_from
        out.append(entry)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--drift-from", type=date.fromisoformat, default=date(2026, 11, 19))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "estimation.json")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-estimation-") as tmp:
        home = Path(tmp)
        env = environment(home)
        os.environ.update(env)
        from batchscore.compute.spark import get_spark
        from batchscore.examples.seed import SeedSpec, seed_lake
        from batchscore.settings import load_settings
        from batchscore.storage.lake import Lake
        from jobs import evaluate, train

        settings = load_settings("churn", env)
        days = (LABELS_BY - date(2026, 11, 1)).days + 1
        seed_lake(
            Lake(settings.platform.lake_url),
            SeedSpec(rows=args.rows, drift_from=args.drift_from),
            LABELS_BY,
            days,
        )
        spark = get_spark(settings.platform, app_name="bench-estimation")
        train.run(settings, TRAIN_END, spark=spark)
        nightly_days(settings, spark)
        lookback = {"lookback_days": (LABELS_BY - FIRST).days + 1}  # realize every day at once
        pipeline = settings.pipeline
        performance = pipeline.performance.model_copy(update=lookback)
        pipeline = pipeline.model_copy(update={"performance": performance})
        evaluate.run(settings.model_copy(update={"pipeline": pipeline}), LABELS_BY, run_id="bench-realize")
        compared = compare(settings, args.drift_from)
    gaps = {
        kind: [
            e["abs_gap"]
            for e in compared
            if "abs_gap" in e and e["drifted"] == drifted and e["metric"] == "roc_auc"
        ]
        for kind, drifted in (("undrifted", False), ("drifted", True))
    }
    result = {
        "benchmark": "estimation",
        "rows": args.rows,
        "drift_from": args.drift_from.isoformat(),
        "days": compared,
        "roc_auc_mean_abs_gap": {k: round(sum(v) / len(v), 4) if v else None for k, v in gaps.items()},
        "roc_auc_in_band": sum(1 for e in compared if e["metric"] == "roc_auc" and e.get("in_band")),
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
