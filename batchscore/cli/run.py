"""`batchscore run` and `batchscore backfill`: the nightly DAG as real DagRuns, one logical date each."""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from typing import Any

from batchscore.cli import preflight
from batchscore.errors import BadInput
from batchscore.settings import Settings, load_settings


def add_commands(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run a pipeline's nightly DAG for one logical date (a real DagRun)")
    run.add_argument("--pipeline", required=True)
    run.add_argument("--date", type=date.fromisoformat, required=True)
    run.add_argument("--model-version", type=int)
    run.add_argument(
        "--force",
        action="store_true",
        help="recompute every stage and republish, even when inputs and model version are unchanged",
    )
    preflight.add_options(run)
    run.set_defaults(func=cmd_run)

    backfill = sub.add_parser(
        "backfill",
        help="run a pipeline's nightly DAG for every day from --start to --end, oldest first, in one process",
    )
    backfill.add_argument("--pipeline", required=True)
    backfill.add_argument("--start", type=date.fromisoformat, required=True)
    backfill.add_argument("--end", type=date.fromisoformat, required=True, help="the last day, included")
    backfill.add_argument("--model-version", type=int)
    backfill.add_argument("--force", action="store_true", help="recompute and republish every day")
    preflight.add_options(backfill)
    backfill.set_defaults(func=cmd_backfill)


def cmd_run(args: argparse.Namespace) -> int:
    from batchscore.orchestration.airflow_run import run_pipeline, use_embedded_airflow

    settings = load_settings(args.pipeline)
    use_embedded_airflow(settings)  # before the preflight, which may import Airflow (S3 connections)
    _refuse_before_start(settings, args.date)
    preflight.check_days(settings, [args.date], args)  # before Airflow starts: seconds, not hours

    print(f"Running DAG {settings.pipeline.dag_id} for {args.date} through Airflow (dag.test)...")
    outcome = run_pipeline(
        settings,
        args.date,
        model_version=args.model_version,
        on_task=_print_task,
        conf={"force": True} if args.force else None,
    )
    _print_summary(settings, args.date, outcome)
    return 0 if outcome["state"] == "success" else 1


def cmd_backfill(args: argparse.Namespace) -> int:
    """One DagRun per day, in date order, in this process (Spark, the model and the imports stay
    warm from one day to the next); a failed day is reported and the next one still runs."""
    settings = load_settings(args.pipeline)
    if args.end < args.start:
        raise BadInput(f"--end {args.end} is before --start {args.start}")
    days = [args.start + timedelta(days=i) for i in range((args.end - args.start).days + 1)]
    first_day = settings.pipeline.schedule.start_date
    if args.start < first_day:
        raise BadInput(
            f"--start {args.start} is before {settings.pipeline.dag_id}'s start date {first_day} "
            "(schedule.start_date in the pipeline file): Airflow creates no task for those days; nothing was run"
        )
    from batchscore.orchestration.airflow_run import run_pipeline, use_embedded_airflow

    use_embedded_airflow(settings)  # before the preflight, which may import Airflow (S3 connections)
    preflight.check_days(settings, days, args)

    print(
        f"Backfilling {settings.pipeline.dag_id}: {len(days)} days, {days[0]} to {days[-1]}, one DagRun each"
    )
    conf = {"force": True} if args.force else None
    started, failed, scored = time.perf_counter(), [], 0
    for day in days:
        outcome = run_pipeline(settings, day, model_version=args.model_version, conf=conf)
        rows = _backfill_line(day, outcome)
        scored += rows
        if outcome["state"] != "success":
            failed.append(day)
    seconds = time.perf_counter() - started
    print(
        f"backfill {days[0]}..{days[-1]}: {len(days) - len(failed)} of {len(days)} days succeeded, "
        f"{scored:,} rows scored in {seconds:.0f}s ({scored / seconds:,.0f} rows/s)"
    )
    if failed:
        print(f"  failed: {', '.join(str(d) for d in failed)}; nothing was published for them (rerun each)")
    return 1 if failed else 0


def _refuse_before_start(settings: Settings, day: date) -> None:
    """Checked here too (`run_pipeline` does) so that it comes before the partition check."""
    first_day = settings.pipeline.schedule.start_date
    if day < first_day:
        raise BadInput(
            f"{day} is before {settings.pipeline.dag_id}'s start date {first_day} (schedule.start_date in "
            "the pipeline file): Airflow would create no task for it; nothing was run"
        )


def _backfill_line(day: date, outcome: dict[str, Any]) -> int:
    """Print one line for the day's run; the rows it scored (0 when reused or failed)."""
    results = outcome["results"]
    if outcome["state"] != "success":
        failed = [t for t, state in outcome["errors"].items() if state == "failed"]
        print(f"  {day}  FAILED in {outcome['seconds']:.0f}s at {', '.join(failed) or 'a task'}", flush=True)
        return 0
    publish, score = results["publish"], results["score"]
    rows = 0 if _unchanged(score) else int(score.get("rows", 0))
    what = (
        "unchanged (already published)" if publish.get("skipped") else f"published {publish['rows']:,} rows"
    )
    model = results["resolve_model"]
    print(
        f"  {day}  ok in {outcome['seconds']:.0f}s: {what} (v{model['model_version']}), "
        f"drift gate {results['drift_gate']['decision']}",
        flush=True,
    )
    return rows


def _print_task(task_id: str, state: str, result: Any) -> None:
    detail = ""
    if isinstance(result, dict):
        parts = [
            f"{result['rows']:,} rows" if "rows" in result else "",
            f"v{result['model_version']}" if "model_version" in result and task_id == "resolve_model" else "",
            f"decision={result['decision']}" if "decision" in result else "",
            f"{result['seconds']:.1f}s" if "seconds" in result and not _unchanged(result) else "",
            f"reused (computed {result.get('computed_at')})" if result.get("reused") else "",
            f"skipped: {result['skipped']}" if result.get("skipped") else "",
        ]
        detail = "  " + ", ".join(p for p in parts if p)
    mark = {"success": "ok ", "failed": "FAIL", "upstream_failed": "skip", "skipped": "skip"}.get(
        state, state
    )
    print(f"  [{mark:>4}] {task_id:<20}{detail}", flush=True)


def _unchanged(result: dict[str, Any]) -> bool:
    """A stage that reused an earlier output or found nothing to do: its own seconds say nothing."""
    return bool(result.get("reused") or result.get("skipped"))


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
    unchanged = bool(results["publish"].get("skipped"))
    print(
        f"  rows: raw {rows['validate_raw']:,} -> features {rows['build_features']:,} -> scored "
        f"{rows['score']:,} -> {'unchanged' if unchanged else 'published'} {rows['publish']:,}  "
        f"(model {model['model_name']} v{model['model_version']})"
    )
    _print_quarantine(results["validate_raw"].get("quarantine"))
    _print_reuse(results, run_date)
    gate = results["drift_gate"]
    print(
        f"  drift gate: {gate['decision']} (drifted share {gate['drifted_share']:.2f}, "
        f"features drifted: {', '.join(gate['drifted_features']) or 'none'})"
    )
    _print_evaluation(results.get("evaluate"))
    print(f"  warehouse:  {settings.platform.warehouse_url}")
    for stage in ("validate_raw", "validate_features", "validate_scores"):
        print(f"  report:     {results[stage]['report']}")
    print(f"  report:     {results['drift_report']['report']}")
    health = results.get("health_page")
    if isinstance(health, dict) and health.get("report"):
        print(f"  health:     {health['report']}")
    print("  try:")
    print(f'    .venv/bin/batchscore sql "SELECT * FROM {pipeline.scores_table}_by_day"')
    print(
        f'    .venv/bin/batchscore sql "SELECT * FROM latest_{pipeline.scores_table} ORDER BY score DESC LIMIT 10"'
    )
    print('    .venv/bin/batchscore sql "SELECT * FROM run_history LIMIT 5"')
    for query in outcome_queries(pipeline.name):
        print(f'    .venv/bin/batchscore sql "{query}"')

    if pipeline.explain is not None:
        reasons = results["score"].get("reasons") or {}
        key, table = pipeline.dataset.entity_key, pipeline.reasons_table
        print(f"  reasons:    {reasons.get('rows', 0):,} rows, top {pipeline.explain.top_k} per scored row")
        print(
            f'    .venv/bin/batchscore sql "SELECT feature, count(*) AS top_reason FROM {table} '
            f"WHERE rank = 1 AND run_date = '{run_date}' GROUP BY feature ORDER BY 2 DESC\""
        )
        print(
            f'    .venv/bin/batchscore sql "SELECT * FROM {table} WHERE {key} = '
            f"(SELECT min({key}) FROM {table}) AND run_date = '{run_date}' ORDER BY rank\""
        )


def _print_quarantine(held: dict[str, Any] | None) -> None:
    """How many raw rows the gate held aside, and why (nothing when the pipeline has no quarantine)."""
    if not held:
        return
    rules = ", ".join(f"{name} {count:,}" for name, count in held["rules"].items()) or "none broken"
    print(
        f"  quarantine: {held['quarantined_rows']:,} of {held['rows']:,} raw rows held aside in "
        f"{held['table']} ({rules}); tolerance {held['max_rows']:,} rows"
    )


def _print_reuse(results: dict[str, Any], run_date: date) -> None:
    """Which stages reused an earlier attempt's output, and whether the run was a no-op."""
    reused = [t for t, r in results.items() if isinstance(r, dict) and r.get("reused")]
    if reused:
        print(
            f"  reused:     {', '.join(reused)} (inputs, feature set, model and settings unchanged; "
            "--force recomputes)"
        )
    publish = results["publish"]
    if publish.get("skipped"):
        print(
            f"  no-op:      {run_date} was {publish['skipped']} (run {publish['published_by']}, "
            f"{publish['published_at']}); nothing was republished (--force republishes)"
        )


def outcome_queries(name: str) -> list[str]:
    """The queries that show a pipeline's outcome tables (also listed in the README)."""
    return [
        f"SELECT run_date, kind, role, model_version, metric, round(value, 4) AS value, round(lower, 4) AS lower, "
        f"round(upper, 4) AS upper, row_count FROM model_performance_{name} WHERE segment = 'all' "
        f"AND metric IN ('roc_auc', 'accuracy', 'log_loss', 'brier', 'rmse', 'mae', 'macro_f1') "
        f"ORDER BY run_date, metric, kind",
        f"SELECT run_date, previous_run_date, score_psi, rank_correlation, decision_flip_share, "
        f"shared_entities, new_entities, gone_entities FROM score_stability_{name} ORDER BY run_date",
    ]


def _print_evaluation(evaluated: Any) -> None:
    """One line each: the day's estimate, each realized day, stability, and any breach."""
    if not isinstance(evaluated, dict):
        return
    estimated = evaluated.get("estimated", {})
    champion = estimated.get("champion")
    if isinstance(champion, dict) and champion.get("roc_auc"):
        value, low, high = champion["roc_auc"]
        print(
            f"  estimated:  ROC AUC {value:.4f} (95% band {low:.4f}-{high:.4f}) on {champion['rows']:,} rows"
        )
    elif "skipped" in estimated:
        print(f"  estimated:  {estimated['skipped']}")
    for day, found in sorted(evaluated.get("realized", {}).items()):
        realized = found.get("champion")
        if isinstance(realized, dict):
            metrics = ", ".join(
                f"{name} {realized[name]:.4f}"
                for name in ("roc_auc", "log_loss", "rmse", "macro_f1")
                if isinstance(realized.get(name), float)
            )
            print(f"  realized:   {day}: {metrics} on {realized['rows']:,} labeled rows")
    stability = evaluated.get("stability", {})
    if "skipped" in stability:
        print(f"  stability:  {stability['skipped']}")
    else:
        print(
            f"  stability:  vs {stability['previous_run_date']}: score PSI {stability['score_psi']:.4f}, "
            f"rank correlation {stability['rank_correlation'] or float('nan'):.4f}, "
            f"decision flips {stability['decision_flip_share'] or 0:.2%}"
        )
    for reason in evaluated.get("performance_breaches", []) + evaluated.get("stability_breaches", []):
        print(f"  ALERT:      {reason}")


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
