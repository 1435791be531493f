"""The nightly DAG's task bodies, one function per task: each reads the run's date from the
Airflow context, calls its stage's job and returns the stage's result (its XCom).

Every function takes the pipeline's name first (bound when the DAG is built). Jobs are
imported when the task runs, so parsing the DAG imports none of them.
"""

from __future__ import annotations

from typing import Any

from batchscore.orchestration.task_support import (
    costed,
    current,
    forced,
    no_retry_for_permanent_failures,
    push_metrics,
    settings_of,
    stage_seconds,
)


def resolve_model(pipeline: str) -> dict[str, Any]:
    """Pin the model version for the whole run (retries read it from XCom): the alias as it
    stood on the run's date, unless the `model_version` param overrides it."""
    from jobs import resolve_model as job

    context, run_date = current()
    requested = context["params"].get("model_version")
    with no_retry_for_permanent_failures():
        return job.run(
            settings_of(pipeline), run_date, int(requested) if requested else None, run_id=context["run_id"]
        )


def wait_for_partition(pipeline: str) -> Any:
    """Done when the day's raw partition carries its _SUCCESS marker; never falls back."""
    from airflow.sdk import PokeReturnValue

    from batchscore.storage.lake import Lake

    s = settings_of(pipeline)
    lake = Lake(s.platform.lake_url, s.platform)
    partition = lake.raw_partition(s.pipeline.dataset.name, current()[1])
    return PokeReturnValue(is_done=lake.landed(partition), xcom_value=lake.remote_url(partition))


def validate_raw(pipeline: str) -> dict[str, Any]:
    """Gate the raw partition: its contract, then its expectation suite."""
    from jobs import validate

    with no_retry_for_permanent_failures():
        return costed(validate.run, settings_of(pipeline), current()[1], "raw")


def build_features(pipeline: str) -> dict[str, Any]:
    """Compute the day's features partition with the feature set training shares (or reuse it:
    same raw partition, feature set and code, and no `force`)."""
    from jobs import build_features as job

    context, run_date = current()
    with no_retry_for_permanent_failures():
        return costed(job.run, settings_of(pipeline), run_date, force=forced(context))


def validate_features(pipeline: str) -> dict[str, Any]:
    """Gate the features partition."""
    from jobs import validate

    with no_retry_for_permanent_failures():
        return costed(validate.run, settings_of(pipeline), current()[1], "features")


def score(pipeline: str, model: dict[str, Any]) -> dict[str, Any]:
    """Score the features with the pinned version (and the pinned challenger, in shadow), or
    reuse the scores of an earlier attempt made from the same features and models."""
    from jobs import score as job

    context, run_date = current()
    with no_retry_for_permanent_failures():
        return costed(
            job.run,
            settings_of(pipeline),
            run_date,
            model["model_version"],
            challenger_version=model.get("challenger_version"),
            challenger_pinned=True,
            force=forced(context),
        )


def validate_scores(pipeline: str, model: dict[str, Any]) -> dict[str, Any]:
    """Gate the champion's scores partition."""
    from jobs import validate

    with no_retry_for_permanent_failures():
        return costed(validate.run, settings_of(pipeline), current()[1], "scores", model["model_version"])


def publish(pipeline: str, model: dict[str, Any], *stages: dict[str, Any]) -> dict[str, Any]:
    """Publish the scores in one transaction, with the stages' timings and CPU seconds; a day
    already published with these scores is left as it is (a no-op) unless `force`."""
    from jobs import publish as job

    context, run_date = current()
    timings = {s["stage"]: stage_seconds(s) for s in stages if "seconds" in s}
    cpu = {s["stage"]: float(s["cpu_seconds"]) for s in stages if s.get("cpu_seconds") is not None}
    with no_retry_for_permanent_failures():
        return job.run(
            settings_of(pipeline),
            run_date,
            model["model_version"],
            run_id=context["run_id"],
            try_number=context["ti"].try_number,
            stage_seconds=timings,
            stage_cpu_seconds=cpu,
            model_source=model.get("source"),
            force=forced(context),
        )


def publish_shadow(pipeline: str, scored: dict[str, Any]) -> dict[str, Any]:
    """Challenger scores (when the score stage made any) to the shadow table, validated first."""
    challenger = scored.get("challenger")
    if not challenger:
        return {"stage": "publish_shadow", "skipped": "no challenger scored"}
    from jobs import publish as job
    from jobs import validate

    context, run_date = current()
    version = int(challenger["model_version"])
    settings = settings_of(pipeline)
    with no_retry_for_permanent_failures():
        validate.run(settings, run_date, "scores", version)
        return job.run_shadow(settings, run_date, version, run_id=context["run_id"], force=forced(context))


def drift_report(pipeline: str, model: dict[str, Any]) -> dict[str, Any]:
    """Drift statistics and the Evidently report against the model's reference sample."""
    from jobs import drift

    with no_retry_for_permanent_failures():
        return drift.run(settings_of(pipeline), current()[1], model["model_version"])


def drift_gate(pipeline: str, model: dict[str, Any], drift: dict[str, Any]) -> dict[str, Any]:
    """Decide on the drift evidence: record the decision, alert when the gate fires."""
    from jobs import gate

    context, run_date = current()
    settings = settings_of(pipeline)
    with no_retry_for_permanent_failures():
        decided = gate.run(settings, run_date, model["model_version"], context["run_id"], drift)
    push_metrics(context, settings, success=True, gate=decided)
    return decided


def health_page(pipeline: str, model: dict[str, Any]) -> dict[str, Any]:
    """The model-health page of the run's day, from the warehouse; a table without rows yet
    (no labels, no reason codes) gives a section saying why, not a failure."""
    from jobs import health

    with no_retry_for_permanent_failures():
        return health.run(settings_of(pipeline), current()[1], model["model_version"])


def evaluate(pipeline: str, published: dict[str, Any]) -> dict[str, Any]:
    """Estimated performance of the day's scores, realized performance of the days whose labels
    landed, and score stability; breaches alert (after `publish` and `publish_shadow`)."""
    from batchscore.telemetry.metrics import push_performance_metrics
    from jobs import evaluate as job

    context, run_date = current()
    settings = settings_of(pipeline)
    with no_retry_for_permanent_failures():
        evaluated = job.run(settings, run_date, run_id=context["run_id"])
    push_performance_metrics(
        settings.platform.pushgateway_url, pipeline, evaluated, settings.platform.alert_webhook
    )
    return evaluated


def retrain_needed(pipeline: str, gate: dict[str, Any], evaluated: dict[str, Any] | None = None) -> bool:
    """Go on to trigger the retrain DAG when the drift gate recommends retraining, or when
    realized performance fell below its threshold and `performance.trigger_retrain` is set."""
    return bool(gate.get("trigger_retrain") or (evaluated or {}).get("trigger_retrain"))
