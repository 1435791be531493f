"""The nightly DAG's stages, one function per task: each takes the run's context (built once
per task by `task_support.stage`), calls its stage's job and returns the stage's result (its
XCom).

The DAG binds each task to the pipeline's name (the stage wrapper's first argument). Jobs are
imported when the task runs, so parsing the DAG imports none of them.
"""

from __future__ import annotations

import logging
from typing import Any

from batchscore.models.pinned import PinnedModel
from batchscore.models.scored import ScoreResult
from batchscore.orchestration.run_context import RunContext
from batchscore.orchestration.run_metrics import StageTiming, push_metrics
from batchscore.orchestration.task_support import stage
from batchscore.quality.drift_evidence import DriftEvidence


@stage()
def resolve_model(run: RunContext) -> dict[str, Any]:
    """Pin the model version for the whole run (retries read it from XCom): the alias as it
    stood on the run's date, unless the `model_version` param overrides it."""
    from jobs import resolve_model as job

    requested = run.params.get("model_version")
    pinned = job.run(run.settings, run.run_date, int(requested) if requested else None, run_id=run.run_id)
    return pinned.to_xcom()


@stage(retry_policy=False)
def wait_for_partition(run: RunContext) -> Any:
    """Done when the day's raw partition carries its _SUCCESS marker; never falls back."""
    from airflow.sdk import PokeReturnValue

    dataset, sensor = run.pipeline.dataset.name, run.pipeline.sensor
    partition = run.lake.raw_partition(dataset, run.run_date)
    landed = run.lake.landed(partition)
    logging.getLogger(__name__).info(
        "%s the raw partition of %s for %s: %s/_SUCCESS (checked every %ss, for up to %ss)",
        "found" if landed else "waiting for",
        dataset,
        run.run_date,
        run.lake.remote_url(partition),
        sensor.poke_interval_s,
        sensor.timeout_s,
    )
    return PokeReturnValue(is_done=landed, xcom_value=run.lake.remote_url(partition))


@stage(cost=True)
def validate_raw(run: RunContext) -> dict[str, Any]:
    """Gate the raw partition: its contract, then its expectation suite."""
    from jobs import validate

    return validate.run(run.settings, run.run_date, "raw")


@stage(cost=True)
def build_features(run: RunContext) -> dict[str, Any]:
    """Compute the day's features partition with the feature set training shares (or reuse it:
    same raw partition, feature set and code, and no `force`)."""
    from jobs import build_features as job

    return job.run(run.settings, run.run_date, force=run.force)


@stage(cost=True)
def validate_features(run: RunContext) -> dict[str, Any]:
    """Gate the features partition."""
    from jobs import validate

    return validate.run(run.settings, run.run_date, "features")


@stage(cost=True)
def score(run: RunContext, model: dict[str, Any]) -> dict[str, Any]:
    """Score the features with the pinned version (and the pinned challenger, in shadow), or
    reuse the scores of an earlier attempt made from the same features and models."""
    from jobs import score as job

    pinned = PinnedModel.from_xcom(model)
    return job.run(
        run.settings,
        run.run_date,
        pinned.model_version,
        challenger_version=pinned.challenger_version,
        challenger_pinned=True,
        force=run.force,
    ).to_xcom()


@stage(cost=True)
def validate_scores(run: RunContext, model: dict[str, Any]) -> dict[str, Any]:
    """Gate the champion's scores partition."""
    from jobs import validate

    return validate.run(run.settings, run.run_date, "scores", PinnedModel.from_xcom(model).model_version)


@stage()
def publish(run: RunContext, model: dict[str, Any], *stages: dict[str, Any]) -> dict[str, Any]:
    """Publish the scores in one transaction, with the stages' timings and CPU seconds; a day
    already published with these scores is left as it is (a no-op) unless `force`."""
    from jobs import publish as job

    timed = [StageTiming.from_xcom(s) for s in stages]
    timings = {t.stage: t.elapsed for t in timed if t.elapsed is not None}
    cpu = {t.stage: t.cpu_seconds for t in timed if t.cpu_seconds is not None}
    pinned = PinnedModel.from_xcom(model)
    return job.run(
        run.settings,
        run.run_date,
        pinned.model_version,
        run_id=run.run_id,
        try_number=run.try_number,
        stage_seconds=timings,
        stage_cpu_seconds=cpu,
        model_source=pinned.source,
        force=run.force,
    )


@stage()
def publish_shadow(run: RunContext, scored: dict[str, Any]) -> dict[str, Any]:
    """Challenger scores (when the score stage made any) to the shadow table, validated first."""
    challenger = ScoreResult.from_xcom(scored).challenger
    if challenger is None:
        return {"stage": "publish_shadow", "skipped": "no challenger scored"}
    from jobs import publish as job
    from jobs import validate

    version = challenger.model_version
    validate.run(run.settings, run.run_date, "scores", version)
    return job.run_shadow(run.settings, run.run_date, version, run_id=run.run_id, force=run.force)


@stage()
def drift_report(run: RunContext, model: dict[str, Any]) -> dict[str, Any]:
    """Drift statistics and the Evidently report against the model's reference sample."""
    from jobs import drift

    return drift.run(run.settings, run.run_date, PinnedModel.from_xcom(model).model_version).to_xcom()


def _push_gate_metrics(run: RunContext, decided: dict[str, Any]) -> None:
    """The run's metrics, with the gate's decision, once the gate has decided."""
    push_metrics({"ti": run.ti}, run.settings, success=True, gate=decided)


@stage(metrics=_push_gate_metrics)
def drift_gate(run: RunContext, model: dict[str, Any], drift: dict[str, Any]) -> dict[str, Any]:
    """Decide on the drift evidence: record the decision, alert when the gate fires."""
    from jobs import gate

    version = PinnedModel.from_xcom(model).model_version
    evidence = DriftEvidence.from_xcom(drift)
    return gate.run(run.settings, run.run_date, version, run.run_id, evidence).to_xcom()


@stage()
def health_page(run: RunContext, model: dict[str, Any]) -> dict[str, Any]:
    """The model-health page of the run's day, from the warehouse; a table without rows yet
    (no labels, no reason codes) gives a section saying why, not a failure."""
    from jobs import health

    return health.run(run.settings, run.run_date, PinnedModel.from_xcom(model).model_version)


def _push_performance_metrics(run: RunContext, evaluated: dict[str, Any]) -> None:
    from batchscore.telemetry.metrics import push_performance_metrics

    platform = run.platform
    push_performance_metrics(platform.pushgateway_url, run.pipeline.name, evaluated, platform.alert_webhook)


@stage(metrics=_push_performance_metrics)
def evaluate(run: RunContext, published: dict[str, Any]) -> dict[str, Any]:
    """Estimated performance of the day's scores, realized performance of the days whose labels
    landed, and score stability; breaches alert (after `publish` and `publish_shadow`)."""
    from jobs import evaluate as job

    return job.run(run.settings, run.run_date, run_id=run.run_id)


def retrain_needed(pipeline: str, gate: dict[str, Any], evaluated: dict[str, Any] | None = None) -> bool:
    """Go on to trigger the retrain DAG when the drift gate recommends retraining, or when
    realized performance fell below its threshold and `performance.trigger_retrain` is set."""
    from jobs.gate import GateDecision

    return GateDecision.from_xcom(gate).trigger_retrain or bool((evaluated or {}).get("trigger_retrain"))
