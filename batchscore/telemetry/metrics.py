"""A nightly run's metrics, pushed to a Prometheus Pushgateway when one is configured.

Grouping key `job=batchscore_nightly, pipeline=<name>`: each pipeline's latest run replaces
its previous push. A failed push never fails the run: it logs a warning and alerts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from batchscore.telemetry.alerts import send_alert

log = logging.getLogger("batchscore.telemetry.metrics")

JOB = "batchscore_nightly"


def run_registry(
    pipeline: str,
    stages: Iterable[dict[str, Any]],
    *,
    success: bool,
    model_version: int | None = None,
    gate: dict[str, Any] | None = None,
    now: float | None = None,
) -> CollectorRegistry:
    """The run's gauges: per stage rows, seconds, rows/s and CPU seconds; the run's outcome."""
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ("pipeline",)) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    rows = gauge("batchscore_stage_rows", "Rows a stage processed in the last run", ("pipeline", "stage"))
    seconds = gauge("batchscore_stage_duration_seconds", "Wall seconds of a stage", ("pipeline", "stage"))
    rate = gauge("batchscore_stage_rows_per_second", "Rows per wall second of a stage", ("pipeline", "stage"))
    cpu = gauge(
        "batchscore_stage_cpu_seconds", "CPU seconds of a stage's process tree", ("pipeline", "stage")
    )
    for stage in stages:
        name = str(stage.get("stage", "unknown"))
        if stage.get("rows") is not None:
            rows.labels(pipeline, name).set(float(stage["rows"]))
        if stage.get("seconds") is not None:
            seconds.labels(pipeline, name).set(float(stage["seconds"]))
            if stage.get("rows") is not None and float(stage["seconds"]) > 0:
                rate.labels(pipeline, name).set(float(stage["rows"]) / float(stage["seconds"]))
        if stage.get("cpu_seconds") is not None:
            cpu.labels(pipeline, name).set(float(stage["cpu_seconds"]))
        if stage.get("quarantine"):
            held = stage["quarantine"]
            gauge("batchscore_quarantined_rows", "Rows held in quarantine by the run").labels(pipeline).set(
                float(held["quarantined_rows"])
            )
            tolerance = gauge(
                "batchscore_quarantine_max_rows", "Rows the quarantine may hold before the run fails"
            )
            tolerance.labels(pipeline).set(float(held["max_rows"]))
    at = time.time() if now is None else now
    gauge("batchscore_run_success", "1 when the last run succeeded, 0 when it failed").labels(pipeline).set(
        1.0 if success else 0.0
    )
    gauge("batchscore_last_push_timestamp_seconds", "When the last run pushed").labels(pipeline).set(at)
    if success:
        last = gauge("batchscore_last_success_timestamp_seconds", "When the last successful run pushed")
        last.labels(pipeline).set(at)
    if model_version is not None:
        gauge("batchscore_model_version", "Model version the run scored with").labels(pipeline).set(
            model_version
        )
    if gate:
        _gate_metrics(registry, pipeline, gate)
    return registry


def _gate_metrics(registry: CollectorRegistry, pipeline: str, gate: dict[str, Any]) -> None:
    if gate.get("drifted_share") is not None:
        share = Gauge("batchscore_drift_share", "Share of drifted features", ["pipeline"], registry=registry)
        share.labels(pipeline).set(float(gate["drifted_share"]))
    decision = Gauge(
        "batchscore_gate_decision",
        "1 for the drift gate's decision",
        ["pipeline", "decision"],
        registry=registry,
    )
    decision.labels(pipeline, str(gate.get("decision", "unknown"))).set(1.0)
    fired = Gauge("batchscore_gate_fired", "1 when the drift gate alerted", ["pipeline"], registry=registry)
    fired.labels(pipeline).set(1.0 if gate.get("alerted") or gate.get("trigger_retrain") else 0.0)


def push_run_metrics(
    url: str | None,
    pipeline: str,
    stages: Iterable[dict[str, Any]],
    *,
    success: bool,
    alert_webhook: str | None = None,
    model_version: int | None = None,
    gate: dict[str, Any] | None = None,
) -> bool:
    """Push the run's metrics; returns whether the Pushgateway took them. Never raises."""
    if not url:
        return False
    try:
        registry = run_registry(pipeline, stages, success=success, model_version=model_version, gate=gate)
        push_to_gateway(url, job=JOB, registry=registry, grouping_key={"pipeline": pipeline}, timeout=10)
    except Exception as exc:  # a metrics outage must never fail a run
        log.warning("pushing metrics to %s failed: %s", url, exc)
        send_alert(
            alert_webhook, f"batchscore {pipeline}: metrics push failed", {"url": url, "error": str(exc)}
        )
        return False
    return True


def performance_registry(pipeline: str, evaluated: dict[str, Any]) -> CollectorRegistry:
    """The evaluate stage's gauges: the champion's estimated metrics of the run's day, the
    realized metrics of the newest day whose labels landed, and whether a threshold broke."""
    registry = CollectorRegistry()
    value = Gauge(
        "batchscore_model_performance",
        "Champion performance: estimated for the run's day, realized for the newest labeled day",
        ["pipeline", "kind", "metric"],
        registry=registry,
    )
    estimated = evaluated.get("estimated", {}).get("champion") or {}
    realized_days = [
        day["champion"]
        for _, day in sorted(evaluated.get("realized", {}).items())
        if isinstance(day.get("champion"), dict)
    ]
    for kind, metrics in (("estimated", estimated), ("realized", realized_days[-1] if realized_days else {})):
        for metric in ("roc_auc", "accuracy", "log_loss", "brier", "rmse", "mae", "macro_f1"):
            found = metrics.get(metric)
            found = found[0] if isinstance(found, list) else found
            if found is not None:
                value.labels(pipeline, kind, metric).set(float(found))
    breached = Gauge(
        "batchscore_performance_breached",
        "1 when the last evaluation found performance beyond the pipeline's thresholds",
        ["pipeline"],
        registry=registry,
    )
    breached.labels(pipeline).set(1.0 if evaluated.get("performance_breaches") else 0.0)
    unstable = Gauge(
        "batchscore_score_unstable",
        "1 when the day's scores moved beyond the pipeline's stability thresholds",
        ["pipeline"],
        registry=registry,
    )
    unstable.labels(pipeline).set(1.0 if evaluated.get("stability_breaches") else 0.0)
    return registry


def push_performance_metrics(
    url: str | None, pipeline: str, evaluated: dict[str, Any], alert_webhook: str | None = None
) -> bool:
    """Push the evaluate stage's gauges in their own group (`stage=evaluate`), so the run's push
    and this one never replace each other. Never raises."""
    if not url:
        return False
    try:
        registry = performance_registry(pipeline, evaluated)
        grouping = {"pipeline": pipeline, "stage": "evaluate"}
        push_to_gateway(url, job=JOB, registry=registry, grouping_key=grouping, timeout=10)
    except Exception as exc:  # a metrics outage must never fail a run
        log.warning("pushing performance metrics to %s failed: %s", url, exc)
        send_alert(
            alert_webhook, f"batchscore {pipeline}: metrics push failed", {"url": url, "error": str(exc)}
        )
        return False
    return True
