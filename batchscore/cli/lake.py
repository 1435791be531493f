"""`batchscore lake seed`: write a synthetic example lake (churn or deliveries)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

from batchscore.cli.output import progress
from batchscore.settings import load_platform

if TYPE_CHECKING:
    from batchscore.storage.lake import Lake

# example name -> (what a row is, the counts key of its entity partitions)
EXAMPLES = {"churn": ("customer", "customer_partitions"), "deliveries": ("shipment", "shipment_partitions")}


def add_commands(sub: argparse._SubParsersAction) -> None:
    lake = sub.add_parser("lake", help="the data lake").add_subparsers(dest="lake_command", required=True)
    seed = lake.add_parser(
        "seed", help="write a synthetic example lake (daily entity partitions + late labels)"
    )
    seed.add_argument(
        "--example",
        choices=sorted(EXAMPLES),
        default="churn",
        help="churn: customers + churn_labels; deliveries: shipments + shipment_outcomes",
    )
    seed.add_argument("--days", type=int, default=21)
    seed.add_argument("--rows", type=int, default=100_000, help="customers or shipments per daily partition")
    seed.add_argument("--end-date", type=date.fromisoformat, required=True, help="last day to write")
    seed.add_argument("--drift-from", type=date.fromisoformat, help="inject drift from this day on")
    seed.add_argument("--seed", type=int, default=42)
    seed.add_argument("--label-lag-days", type=int, default=3)
    seed.set_defaults(func=cmd_seed)


def seeder(args: argparse.Namespace) -> Callable[[Lake], dict[str, int]]:
    """The chosen example's seeding function, bound to the command's flags."""
    if args.example == "deliveries":
        from batchscore.examples.deliveries import DeliveriesSpec, seed_deliveries

        deliveries = DeliveriesSpec(
            rows=args.rows, seed=args.seed, drift_from=args.drift_from, label_lag_days=args.label_lag_days
        )
        return lambda lake: seed_deliveries(lake, deliveries, args.end_date, args.days, progress=progress)
    from batchscore.examples.seed import SeedSpec, seed_lake

    churn = SeedSpec(
        rows=args.rows, seed=args.seed, drift_from=args.drift_from, label_lag_days=args.label_lag_days
    )
    return lambda lake: seed_lake(lake, churn, args.end_date, args.days, progress=progress)


def cmd_seed(args: argparse.Namespace) -> int:
    from batchscore.storage.lake import Lake

    platform = load_platform()
    noun, partitions = EXAMPLES[args.example]
    started = time.perf_counter()
    example = "" if args.example == "churn" else f" ({args.example} example)"
    print(
        f"Seeding {args.days} days x {args.rows:,} rows ending {args.end_date} into {platform.lake_url}{example}"
    )
    counts = seeder(args)(Lake(platform.lake_url))
    seconds = time.perf_counter() - started
    print(
        f"Seeded {counts[partitions]} {noun} and {counts['label_partitions']} label partitions "
        f"in {seconds:.1f}s ({args.days * args.rows / seconds:,.0f} rows/s)"
    )
    return 0
