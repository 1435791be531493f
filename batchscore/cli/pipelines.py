"""`batchscore pipelines`: list the pipeline files, author a new pipeline, validate one.

batchscore pipelines [--json]
batchscore pipelines new NAME --dataset DATASET --entity-key COLUMN [--date D] [--label COLUMN]
                         [--task binary|regression|multiclass]
batchscore pipelines validate NAME
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

from batchscore.errors import BadInput
from batchscore.settings import REPO_ROOT, discover_pipelines, load_platform


def add_commands(sub: argparse._SubParsersAction) -> None:
    pipelines = sub.add_parser("pipelines", help="list, author and validate the pipeline files")
    pipelines.add_argument("--json", action="store_true", help="list the pipelines as JSON")
    pipelines.set_defaults(func=cmd_pipelines)
    actions = pipelines.add_subparsers(dest="action", metavar="{new,validate}")
    root_help = "where features/ and expectations/ are (default: the repository)"

    new = actions.add_parser("new", help="profile a raw partition and write a pipeline's files for review")
    new.add_argument("name", help="the pipeline's name (an identifier)")
    new.add_argument("--dataset", required=True, help="the raw dataset: <lake>/raw/DATASET/dt=D/")
    new.add_argument("--entity-key", required=True, help="the column that identifies an entity")
    new.add_argument("--date", help="the partition to profile, YYYY-MM-DD (default: the newest complete one)")
    new.add_argument("--label", help="the outcome column, when it is in the dataset")
    new.add_argument("--task", default="binary", help="binary (default) | regression | multiclass")
    new.add_argument("--root", type=Path, default=REPO_ROOT, help=root_help)
    new.set_defaults(func=cmd_new)

    validate = actions.add_parser(
        "validate",
        help="check that a pipeline's YAML, features and suites agree, its features compile against the "
        "raw contract (on Spark), its labels dataset is in the lake and its champion fits its features",
    )
    validate.add_argument("name")
    validate.add_argument("--root", type=Path, default=REPO_ROOT, help=root_help)
    validate.set_defaults(func=cmd_validate)


def cmd_pipelines(args: argparse.Namespace) -> int:
    pipelines = discover_pipelines()
    if args.json:
        print(json.dumps([p.model_dump(mode="json") for p in pipelines], indent=2))
    for p in pipelines if not args.json else []:
        print(
            f"{p.name:<16} dag={p.dag_id:<24} model={p.model.name}@{p.model.alias:<10} schedule={p.schedule.cron}"
        )
    return 0


def _date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"--date {text!r} is not a date: use YYYY-MM-DD") from None


def cmd_new(args: argparse.Namespace) -> int:
    from batchscore.authoring.scaffold import new_pipeline
    from batchscore.storage.lake import Lake

    platform = load_platform()
    result = new_pipeline(
        args.name,
        args.dataset,
        args.entity_key,
        lake=Lake(platform.lake_url, platform),
        pipelines_dir=platform.pipelines_dir,
        root=args.root.resolve(),
        dt=_date(args.date),
        label=args.label,
        task=args.task,
    )
    print(f"profiled raw/{result.dataset}/dt={result.dt.isoformat()}: {result.rows} rows")
    print(f"{len(result.features)} features: {', '.join(result.features)}")
    for column, why in result.skipped:
        print(f"left out {column}: {why}")
    for line in result.checks:
        print(line)
    for path in result.files:
        print(f"wrote {path}")
    print(f"next: review the files (lines marked EDIT), then `batchscore pipelines validate {result.name}`")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Exit 2 listing every problem found (a module that does not import: `-v` logs its traceback)."""
    from batchscore.authoring.check import validate_pipeline

    platform = load_platform()
    for line in validate_pipeline(args.name, platform.pipelines_dir, args.root.resolve(), platform):
        print(line)
    print(f"OK {args.name}")
    return 0
