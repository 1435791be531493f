"""`batchscore train`: train and register a version of a pipeline's model."""

from __future__ import annotations

import argparse
from datetime import date

from batchscore.settings import load_settings


def add_commands(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train and register a model version")
    train.add_argument("--pipeline", required=True)
    train.add_argument("--date", type=date.fromisoformat, required=True, help="use labels landed by this day")
    train.add_argument("--promote", action="store_true", help="make the new version the champion")
    train.add_argument("--if-missing", action="store_true", help="do nothing when a champion exists")
    train.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from batchscore.models.registry import ModelRegistry
    from batchscore.storage.lake import Lake

    settings = load_settings(args.pipeline)
    registry = ModelRegistry(Lake(settings.platform.lake_url), settings.pipeline.model.name)
    current = registry.aliases().get(settings.pipeline.model.alias)
    if args.if_missing and current is not None:
        print(
            f"{settings.pipeline.model.name}: {settings.pipeline.model.alias} is v{current} already; not retraining"
        )
        return 0
    from jobs import train

    print(f"Training {settings.pipeline.model.name} on labels landed by {args.date} (Spark + XGBoost)...")
    result = train.run(settings, args.date, promote=args.promote)
    metrics = result["metrics"]
    print(
        f"Registered {result['model']} v{result['version']}"
        f"{' as ' + settings.pipeline.model.alias if result['promoted'] else ''}: "
        f"holdout AUC {metrics['holdout_auc']:.3f}, log loss {metrics['holdout_logloss']:.3f}, "
        f"{result['rows']:,} labelled rows, {result['seconds']:.0f}s"
    )
    return 0
