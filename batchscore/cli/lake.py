"""`batchscore lake seed`: write the synthetic example lake."""

from __future__ import annotations

import argparse
import time
from datetime import date

from batchscore.cli.output import progress
from batchscore.settings import load_platform


def add_commands(sub: argparse._SubParsersAction) -> None:
    lake = sub.add_parser("lake", help="the data lake").add_subparsers(dest="lake_command", required=True)
    seed = lake.add_parser("seed", help="write a synthetic example lake (customers + late labels)")
    seed.add_argument("--days", type=int, default=21)
    seed.add_argument("--rows", type=int, default=100_000, help="customers per daily partition")
    seed.add_argument("--end-date", type=date.fromisoformat, required=True, help="last day to write")
    seed.add_argument("--drift-from", type=date.fromisoformat, help="inject drift from this day on")
    seed.add_argument("--seed", type=int, default=42)
    seed.add_argument("--label-lag-days", type=int, default=3)
    seed.set_defaults(func=cmd_seed)


def cmd_seed(args: argparse.Namespace) -> int:
    from batchscore.examples.seed import SeedSpec, seed_lake
    from batchscore.storage.lake import Lake

    platform = load_platform()
    spec = SeedSpec(
        rows=args.rows, seed=args.seed, drift_from=args.drift_from, label_lag_days=args.label_lag_days
    )
    started = time.perf_counter()
    print(f"Seeding {args.days} days x {args.rows:,} rows ending {args.end_date} into {platform.lake_url}")
    counts = seed_lake(Lake(platform.lake_url), spec, args.end_date, args.days, progress=progress)
    seconds = time.perf_counter() - started
    print(
        f"Seeded {counts['customer_partitions']} customer and {counts['label_partitions']} label partitions "
        f"in {seconds:.1f}s ({args.days * args.rows / seconds:,.0f} rows/s)"
    )
    return 0
