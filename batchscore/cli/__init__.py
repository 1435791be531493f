"""The `batchscore` command: seed a lake, train a model, run a pipeline through Airflow."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import date
from typing import Any

from batchscore.settings import ConfigError, discover_pipelines, load_platform, load_settings

log = logging.getLogger("batchscore.cli")


def configure_logging(verbose: bool) -> None:
    """Structured (logfmt) logs on stderr; quiet by default, third-party libraries quieter still."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            'ts=%(asctime)s level=%(levelname)s logger=%(name)s msg="%(message)s"', "%Y-%m-%dT%H:%M:%S"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for noisy in ("py4j", "great_expectations", "evidently", "airflow", "sqlalchemy", "alembic"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)


def progress(message: str) -> None:
    print(f"  {message}", flush=True)


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


def cmd_run(args: argparse.Namespace) -> int:
    from batchscore.orchestration.airflow_run import run_pipeline

    settings = load_settings(args.pipeline)
    print(f"Running DAG {settings.pipeline.dag_id} for {args.date} through Airflow (dag.test)...")
    outcome = run_pipeline(settings, args.date, model_version=args.model_version, on_task=_print_task)
    _print_summary(settings, args.date, outcome)
    return 0 if outcome["state"] == "success" else 1


def _print_task(task_id: str, state: str, result: Any) -> None:
    detail = ""
    if isinstance(result, dict):
        parts = [
            f"{result['rows']:,} rows" if "rows" in result else "",
            f"v{result['model_version']}" if "model_version" in result and task_id == "resolve_model" else "",
            f"decision={result['decision']}" if "decision" in result else "",
            f"{result['seconds']:.1f}s" if "seconds" in result else "",
        ]
        detail = "  " + ", ".join(p for p in parts if p)
    mark = {"success": "ok ", "failed": "FAIL", "upstream_failed": "skip", "skipped": "skip"}.get(
        state, state
    )
    print(f"  [{mark:>4}] {task_id:<20}{detail}", flush=True)


def _print_summary(settings: Any, run_date: date, outcome: dict[str, Any]) -> None:
    results = outcome["results"]
    pipeline = settings.pipeline
    print()
    print(f"DAG run {outcome['run_id']}: {outcome['state'].upper()} in {outcome['seconds']:.0f}s")
    if outcome["state"] != "success":
        recorded = _recorded_errors(settings, outcome["run_id"])
        for task_id, state in outcome["errors"].items():
            if state == "failed":
                print(f"  {task_id} failed: {recorded.get(task_id, 'see var/airflow/dag_test.log')}")
        skipped = [t for t, state in outcome["errors"].items() if state != "failed"]
        if skipped:
            print(f"  not run: {', '.join(skipped)}; nothing was published for {run_date}")
        return
    model = results["resolve_model"]
    rows = {k: results[k].get("rows") for k in ("validate_raw", "build_features", "score", "publish")}
    print(
        f"  rows: raw {rows['validate_raw']:,} -> features {rows['build_features']:,} -> scored "
        f"{rows['score']:,} -> published {rows['publish']:,}  (model {model['model_name']} v{model['model_version']})"
    )
    gate = results["drift_gate"]
    print(
        f"  drift gate: {gate['decision']} (drifted share {gate['drifted_share']:.2f}, "
        f"features drifted: {', '.join(gate['drifted_features']) or 'none'})"
    )
    print(f"  warehouse:  {settings.platform.warehouse_url}")
    for stage in ("validate_raw", "validate_features", "validate_scores"):
        print(f"  report:     {results[stage]['report']}")
    print(f"  report:     {results['drift_report']['report']}")
    print("  try:")
    print(f'    .venv/bin/batchscore sql "SELECT * FROM {pipeline.scores_table}_by_day"')
    print(
        f'    .venv/bin/batchscore sql "SELECT * FROM latest_{pipeline.scores_table} ORDER BY score DESC LIMIT 10"'
    )
    print('    .venv/bin/batchscore sql "SELECT * FROM run_history LIMIT 5"')


def _recorded_errors(settings: Any, run_id: str) -> dict[str, str]:
    """The latest recorded error per task of a run, as the failure callback stored it."""
    from batchscore.storage.warehouse import open_warehouse

    rows = open_warehouse(settings.platform.warehouse_url).query(
        "SELECT error FROM scoring_runs WHERE run_id = ? AND status = 'failed' ORDER BY recorded_at", [run_id]
    )
    errors: dict[str, str] = {}
    for (error,) in rows:
        task_id, _, message = (error or "").partition(": ")
        errors[task_id] = message
    return errors


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    platform = load_platform()
    if not platform.warehouse_url.startswith("duckdb://"):
        raise ConfigError("`batchscore sql` queries the embedded DuckDB warehouse only")
    with duckdb.connect(platform.warehouse_url.removeprefix("duckdb://"), read_only=True) as con:
        print(con.sql(args.query))
    return 0


def cmd_warehouse_migrate(args: argparse.Namespace) -> int:
    from batchscore.storage.warehouse import open_warehouse

    platform = load_platform()
    applied = open_warehouse(platform.warehouse_url).migrate()
    print(f"applied migrations {applied}" if applied else "schema is up to date")
    return 0


def cmd_warehouse_init_roles(args: argparse.Namespace) -> int:
    from batchscore.storage.warehouse import InvalidIdentifier, open_warehouse
    from batchscore.storage.warehouse.postgres_store import PostgresWarehouse

    platform = load_platform()
    warehouse = open_warehouse(platform.warehouse_url)
    if not isinstance(warehouse, PostgresWarehouse):
        raise ConfigError("`batchscore warehouse init-roles` needs a postgresql:// warehouse URL")
    try:
        roles = warehouse.init_roles(args.writer, args.analyst)
    except InvalidIdentifier as exc:
        raise ConfigError(str(exc)) from None
    print(
        f"writer role {roles['writer']} can publish, analyst role {roles['analyst']} can only read "
        f"schema {roles['schema']} ({roles['objects_handed_over']} existing tables and views handed to the writer)"
    )
    return 0


def cmd_pipelines(args: argparse.Namespace) -> int:
    pipelines = discover_pipelines()
    if args.json:
        print(json.dumps([p.model_dump(mode="json") for p in pipelines], indent=2))
    for p in pipelines if not args.json else []:
        print(
            f"{p.name:<16} dag={p.dag_id:<24} model={p.model.name}@{p.model.alias:<10} schedule={p.schedule.cron}"
        )
    return 0


def _registry(pipeline: str) -> tuple[Any, Any]:
    from batchscore.models.registry import ModelRegistry
    from batchscore.storage.lake import Lake

    settings = load_settings(pipeline)
    return settings, ModelRegistry(Lake(settings.platform.lake_url), settings.pipeline.model.name)


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain aligned table for terminals (use --json for scripts)."""
    if not rows:
        print("(none)")
        return
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


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
            print(card.read_text() if card.is_file() else json.dumps(version.metadata, indent=2))
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


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="batchscore", description=__doc__)
    root.add_argument("-v", "--verbose", action="store_true", help="INFO logs on stderr")
    sub = root.add_subparsers(dest="command", required=True)

    lake = sub.add_parser("lake", help="the data lake").add_subparsers(dest="lake_command", required=True)
    seed = lake.add_parser("seed", help="write a synthetic example lake (customers + late labels)")
    seed.add_argument("--days", type=int, default=21)
    seed.add_argument("--rows", type=int, default=100_000, help="customers per daily partition")
    seed.add_argument("--end-date", type=date.fromisoformat, required=True, help="last day to write")
    seed.add_argument("--drift-from", type=date.fromisoformat, help="inject drift from this day on")
    seed.add_argument("--seed", type=int, default=42)
    seed.add_argument("--label-lag-days", type=int, default=3)
    seed.set_defaults(func=cmd_seed)

    train = sub.add_parser("train", help="train and register a model version")
    train.add_argument("--pipeline", required=True)
    train.add_argument("--date", type=date.fromisoformat, required=True, help="use labels landed by this day")
    train.add_argument("--promote", action="store_true", help="make the new version the champion")
    train.add_argument("--if-missing", action="store_true", help="do nothing when a champion exists")
    train.set_defaults(func=cmd_train)

    run = sub.add_parser("run", help="run a pipeline's nightly DAG for one logical date (a real DagRun)")
    run.add_argument("--pipeline", required=True)
    run.add_argument("--date", type=date.fromisoformat, required=True)
    run.add_argument("--model-version", type=int)
    run.set_defaults(func=cmd_run)

    sql = sub.add_parser("sql", help="query the DuckDB warehouse read-only")
    sql.add_argument("query")
    sql.set_defaults(func=cmd_sql)

    warehouse = sub.add_parser("warehouse", help="the warehouse's schema and roles").add_subparsers(
        dest="warehouse_command", required=True
    )
    migrate = warehouse.add_parser("migrate", help="apply pending schema migrations")
    migrate.set_defaults(func=cmd_warehouse_migrate)
    roles = warehouse.add_parser(
        "init-roles", help="PostgreSQL: create a writer role (publishes) and an analyst role (SELECT only)"
    )
    roles.add_argument("--writer", default="batchscore_writer", help="writer role name")
    roles.add_argument("--analyst", default="batchscore_analyst", help="read-only analyst role name")
    roles.set_defaults(func=cmd_warehouse_init_roles)

    models = sub.add_parser("models", help="the model registry: versions, aliases, promotion, rollback")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    for action, help_text in (
        ("list", "every version with its aliases and holdout metrics"),
        ("show", "one version's model card (default: the alias's version)"),
        ("promote", "point the alias at a version (compare-and-swap, recorded)"),
        ("rollback", "point the alias back at its previous version (recorded)"),
        ("history", "every move of the alias: when, from, to, why"),
    ):
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

    pipelines = sub.add_parser("pipelines", help="list and validate the pipeline files")
    pipelines.add_argument("--json", action="store_true")
    pipelines.set_defaults(func=cmd_pipelines)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
