"""`batchscore models list|show|promote|rollback|history|import|compare`: the model registry from a terminal."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from batchscore.cli.output import print_table
from batchscore.settings import load_settings

ACTIONS = (
    ("list", "every version with its aliases and holdout metrics"),
    ("show", "one version's model card (default: the alias's version)"),
    ("promote", "point the alias at a version (compare-and-swap, recorded)"),
    ("rollback", "point the alias back at its previous version (recorded)"),
    ("history", "every move of the alias: when, from, to, why"),
)


def add_commands(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="the model registry: versions, aliases, promotion, rollback")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    for action, help_text in ACTIONS:
        cmd = models_sub.add_parser(action, help=help_text)
        cmd.add_argument("--pipeline", required=True)
        cmd.add_argument("--alias", help="default: the pipeline's model alias (champion)")
        cmd.add_argument("--json", action="store_true", help="machine-readable output")
        if action in ("show", "promote"):
            cmd.add_argument("--version", type=int, required=action == "promote")
        if action in ("promote", "rollback"):
            cmd.add_argument("--reason", help="why (kept in the alias history)")
        if action == "history":
            cmd.add_argument("--all", action="store_true", help="every alias, not only --alias")
        cmd.set_defaults(func=cmd_models)
    add_import(models_sub)
    add_compare(models_sub)


def add_import(models_sub: argparse._SubParsersAction) -> None:
    cmd = models_sub.add_parser(
        "import", help="register a model trained elsewhere (XGBoost, ONNX, MLflow) as the next version"
    )
    cmd.add_argument("--pipeline", required=True)
    cmd.add_argument(
        "--model", required=True, help="a .json/.ubj/.onnx file, an MLflow model folder, models:/… or runs:/…"
    )
    cmd.add_argument("--alias", help="point this alias at the new version (compare-and-swap, recorded)")
    cmd.add_argument("--metrics", type=Path, help="JSON object of the model's metrics, kept in its card")
    cmd.add_argument(
        "--reference", type=Path, help="Parquet of key + features: the sample and drift reference"
    )
    cmd.add_argument("--note", help="why, kept in the card and the alias history")
    cmd.add_argument(
        "--feature-names", help="the model's input columns in order (a,b,c or @file), when unnamed"
    )
    cmd.add_argument(
        "--training-window", help="START:END days the model was trained on (its drift reference)"
    )
    cmd.add_argument("--json", action="store_true", help="machine-readable output")
    cmd.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    """`batchscore models import`: check everything, then register; exit 2 on bad input."""
    from jobs.import_model import ImportRequest, run

    settings = load_settings(args.pipeline)
    request = ImportRequest(
        source=args.model,
        alias=args.alias,
        metrics_file=args.metrics,
        reference_file=args.reference,
        note=args.note,
        feature_names=_feature_names(args.feature_names),
        training_window=_window(args.training_window),
    )
    from batchscore.models.registry import RegistryError

    try:
        result = run(settings, request)
    except RegistryError as exc:  # e.g. another writer moved the alias first: the version stays, unaliased
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, default=str, sort_keys=True))
        return 0
    print(
        f"{result['model']} v{result['version']}: {result['format']} model registered ({', '.join(result['stored'])})"
    )
    print(f"  checked on {result['sample']}; feature order {result['feature_order']}")
    print(f"  drift reference: {result['reference']}")
    move = result["alias"]
    if move:
        was = f"v{move['from_version']}" if move["from_version"] is not None else "none"
        print(f"  {move['alias']} -> v{move['to_version']} (was {was})")
    else:
        print("  no alias moved (pass --alias, or `batchscore models promote`)")
    return 0


def add_compare(models_sub: argparse._SubParsersAction) -> None:
    from datetime import date

    cmd = models_sub.add_parser(
        "compare", help="score labelled lake data with a challenger and the champion; gate its promotion"
    )
    cmd.add_argument("--pipeline", required=True)
    cmd.add_argument("--challenger", type=int, required=True, help="the version to compare with the champion")
    cmd.add_argument("--days", type=int, default=7, help="label partitions that arrived in this many days")
    cmd.add_argument(
        "--end-date",
        type=date.fromisoformat,
        help="the last arrival day (default: the newest label partition)",
    )
    cmd.add_argument("--promote", action="store_true", help="move the alias to the challenger when it passes")
    cmd.add_argument("--json", action="store_true", help="machine-readable output")
    cmd.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    """`batchscore models compare`: exit 0 when the challenger passes, 1 when it is rejected."""
    from batchscore.models.registry import RegistryError
    from jobs.compare import PROMOTE, run

    settings = load_settings(args.pipeline)
    try:
        result = run(settings, args.challenger, days=args.days, end_date=args.end_date, promote=args.promote)
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, default=str, sort_keys=True))
        return 0 if result["decision"] == PROMOTE else 1
    champion, challenger = result["champion"] or {}, result["challenger"]
    names = [k for k in challenger if k not in ("version", "error")] or ["error"]
    print(
        f"{result['model']} ({result['task']}): v{challenger['version']} vs {result['alias']} "
        + (f"v{champion['version']}" if champion else "(none)")
        + f" on {result['rows']} labelled rows, label partitions {', '.join(result['label_partitions'])}"
    )
    print_table(
        [{"metric": k, "champion": champion.get(k), "challenger": challenger.get(k)} for k in names],
        ["metric", "champion", "challenger"],
    )
    if result["days_without_features"]:
        print(
            f"  labelled days without a complete features partition: {', '.join(result['days_without_features'])}"
        )
    if result["skipped_unknown_labels"]:
        print(f"  {result['skipped_unknown_labels']} rows skipped: label not one of the pipeline's classes")
    print(f"decision: {result['decision'].upper()}")
    for reason in result["reasons"]:
        print(f"  - {reason}")
    move = result["move"]
    if move:
        print(f"  {move['alias']}: v{move['from_version']} -> v{move['to_version']} (compare gate passed)")
    elif result["decision"] == PROMOTE:
        print("  no alias moved (pass --promote)")
    return 0 if result["decision"] == PROMOTE else 1


def _feature_names(value: str | None) -> tuple[str, ...] | None:
    from batchscore.errors import BadInput

    if not value:
        return None
    if value.startswith("@"):
        try:
            lines = Path(value[1:]).read_text().splitlines()
        except OSError as exc:
            raise BadInput(f"--feature-names {value}: {exc}") from None
        return tuple(line.strip() for line in lines if line.strip())
    return tuple(name.strip() for name in value.split(",") if name.strip())


def _window(value: str | None) -> tuple[Any, Any] | None:
    from datetime import date

    from batchscore.errors import BadInput

    if not value:
        return None
    try:
        start, end = (date.fromisoformat(part) for part in value.split(":"))
    except ValueError:
        raise BadInput(f"--training-window {value}: use START:END, e.g. 2026-11-01:2026-11-14") from None
    if end < start:
        raise BadInput(f"--training-window {value}: END is before START")
    return start, end


def _registry(pipeline: str) -> tuple[Any, Any]:
    from batchscore.models.registry import ModelRegistry
    from batchscore.storage.lake import Lake

    settings = load_settings(pipeline)
    return settings, ModelRegistry(Lake(settings.platform.lake_url), settings.pipeline.model.name)


def _version_row(version: Any, aliases: dict[str, int]) -> dict[str, Any]:
    meta = version.metadata
    metrics, window = meta.get("metrics", {}), meta.get("training_window", {})
    return {
        "version": version.version,
        "aliases": ",".join(sorted(a for a, v in aliases.items() if v == version.version)),
        "created_at": str(meta.get("created_at", ""))[:19],
        "auc": metrics.get("holdout_auc"),
        "logloss": metrics.get("holdout_logloss"),
        "trained_on": f"{window.get('start', '?')}..{window.get('end', '?')}",
        "feature_set": str(meta.get("feature_set", {}).get("hash", ""))[:12],
        "code": meta.get("code_version"),
    }


def cmd_models(args: argparse.Namespace) -> int:
    """`batchscore models list|show|promote|rollback|history`."""
    from batchscore.models.registry import RegistryError

    settings, registry = _registry(args.pipeline)
    alias = args.alias or settings.pipeline.model.alias
    try:
        result = _models_action(args, settings, registry, alias)
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, default=str, sort_keys=True))
    return 0


def _models_action(args: argparse.Namespace, settings: Any, registry: Any, alias: str) -> Any:
    from datetime import UTC, datetime

    from batchscore.storage.warehouse import open_warehouse

    action, quiet = args.models_command, args.json
    if action == "list":
        aliases = registry.aliases()
        rows = [_version_row(registry.get(v), aliases) for v in registry.versions()]
        if not quiet:
            print_table(
                rows,
                ["version", "aliases", "created_at", "auc", "logloss", "trained_on", "feature_set", "code"],
            )
        return rows
    if action == "show":
        version = registry.get(args.version) if args.version else registry.resolve(alias)
        card = version.path / "model_card.md"
        if not quiet:
            print(card.read_text() if card.is_file() else json.dumps(dict(version.metadata), indent=2))
            print(f"(files: {version.path})")
        return {**version.metadata, "path": str(version.path), "model_card": str(card)}
    if action == "history":
        moves = registry.history(None if args.all else alias)
        rows = [
            {
                "at": m["at"][:19],
                "alias": m["alias"],
                "from": m["from_version"],
                "to": m["to_version"],
                "reason": m["reason"],
            }
            for m in moves
        ]
        if not quiet:
            print_table(rows, ["at", "alias", "from", "to", "reason"])
        return moves
    current = registry.aliases().get(alias)
    reason = args.reason or ("manual promotion" if action == "promote" else "manual rollback")
    if action == "promote":
        registry.get(args.version).verify()
        move = registry.move_alias(
            alias, args.version, reason=reason, expected_current=current, evidence={"by": "cli"}
        )
    else:
        move = registry.rollback(alias, reason=reason, evidence={"by": "cli"})
    pipeline = settings.pipeline
    open_warehouse(settings.platform.warehouse_url).record_event(
        pipeline.name,
        datetime.now(UTC).date(),
        pipeline.model.name,
        move["to_version"],
        action,
        f"{alias}:v{move['from_version']}->v{move['to_version']}",
        move,
        f"cli__{move['at']}",
    )
    if not quiet:
        print(f"{pipeline.model.name}: {alias} v{move['from_version']} -> v{move['to_version']} ({reason})")
    return move
