"""`batchscore pipelines`: list and validate the pipeline files."""

from __future__ import annotations

import argparse
import json

from batchscore.settings import discover_pipelines


def add_commands(sub: argparse._SubParsersAction) -> None:
    pipelines = sub.add_parser("pipelines", help="list and validate the pipeline files")
    pipelines.add_argument("--json", action="store_true")
    pipelines.set_defaults(func=cmd_pipelines)


def cmd_pipelines(args: argparse.Namespace) -> int:
    pipelines = discover_pipelines()
    if args.json:
        print(json.dumps([p.model_dump(mode="json") for p in pipelines], indent=2))
    for p in pipelines if not args.json else []:
        print(
            f"{p.name:<16} dag={p.dag_id:<24} model={p.model.name}@{p.model.alias:<10} schedule={p.schedule.cron}"
        )
    return 0
