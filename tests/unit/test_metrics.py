"""The nightly run's Prometheus metrics: names, labels, and a dead Pushgateway never fails a run."""

from __future__ import annotations

import logging
import socket

from batchscore.telemetry.metrics import (
    performance_registry,
    push_performance_metrics,
    push_run_metrics,
    run_registry,
)

STAGES = [
    {
        "stage": "validate_raw",
        "rows": 102,
        "seconds": 2.0,
        "cpu_seconds": 1.5,
        "quarantined_rows": 2,
        "quarantine": {"quarantined_rows": 2, "max_rows": 5, "rules": {"finite(x)": 2}},
    },
    {"stage": "score", "rows": 100, "seconds": 4.0, "cpu_seconds": 3.0},
]
GATE = {"decision": "retrain", "alerted": True, "trigger_retrain": True, "drifted_share": 0.5}


def test_metric_names_and_labels() -> None:
    registry = run_registry("churn", STAGES, success=True, model_version=3, gate=GATE, now=1000.0)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for m in registry.collect() for s in m.samples
    }
    churn = (("pipeline", "churn"),)
    score = (("pipeline", "churn"), ("stage", "score"))
    assert samples[("batchscore_stage_rows", score)] == 100
    assert samples[("batchscore_stage_duration_seconds", score)] == 4.0
    assert samples[("batchscore_stage_rows_per_second", score)] == 25.0
    assert samples[("batchscore_stage_cpu_seconds", score)] == 3.0
    assert samples[("batchscore_quarantined_rows", churn)] == 2
    assert samples[("batchscore_quarantine_max_rows", churn)] == 5
    assert samples[("batchscore_run_success", churn)] == 1
    assert samples[("batchscore_last_success_timestamp_seconds", churn)] == 1000.0
    assert samples[("batchscore_last_push_timestamp_seconds", churn)] == 1000.0
    assert samples[("batchscore_model_version", churn)] == 3
    assert samples[("batchscore_drift_share", churn)] == 0.5
    assert samples[("batchscore_gate_fired", churn)] == 1
    assert samples[("batchscore_gate_decision", (("decision", "retrain"), ("pipeline", "churn")))] == 1
    assert all(name.startswith("batchscore_") for name, _ in samples)


def test_failed_run_has_no_last_success() -> None:
    names = {s.name for m in run_registry("churn", [], success=False).collect() for s in m.samples}
    assert "batchscore_run_success" in names
    assert "batchscore_last_success_timestamp_seconds" not in names


def test_dead_pushgateway_warns_and_alerts_without_raising(caplog) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    with caplog.at_level(logging.WARNING):
        pushed = push_run_metrics(f"http://127.0.0.1:{port}", "churn", STAGES, success=True)
    assert pushed is False
    assert "pushing metrics" in caplog.text
    assert "ALERT batchscore churn: metrics push failed" in caplog.text


def test_no_url_pushes_nothing() -> None:
    assert push_run_metrics(None, "churn", STAGES, success=True) is False


def test_run_metrics_push_stage_xcoms(monkeypatch) -> None:
    from batchscore.orchestration import run_metrics
    from batchscore.settings import load_settings

    settings = load_settings("churn", {"BATCHSCORE_PUSHGATEWAY_URL": "http://127.0.0.1:1"})
    pushed: dict = {}

    class TI:
        def xcom_pull(self, task_ids: str) -> dict:
            return {"model_version": 7} if task_ids == "resolve_model" else {"stage": task_ids, "rows": 5}

    def fake(url, pipeline, stages, **kw):  # type: ignore[no-untyped-def]
        pushed.update(url=url, pipeline=pipeline, stages=list(stages), **kw)
        return True

    monkeypatch.setattr("batchscore.telemetry.metrics.push_run_metrics", fake)
    assert run_metrics.push_metrics({"ti": TI()}, settings, success=False)
    assert pushed["success"] is False and pushed["model_version"] == 7 and pushed["pipeline"] == "churn"
    assert [s["stage"] for s in pushed["stages"]] == list(run_metrics.STAGE_TASKS)


def test_performance_gauges_carry_the_estimate_and_the_newest_realized_day() -> None:
    evaluated = {
        "estimated": {"champion": {"roc_auc": [0.81, 0.79, 0.83], "accuracy": [0.9, 0.89, 0.91]}},
        "realized": {
            "2026-11-17": {"champion": {"roc_auc": 0.7, "log_loss": 0.5}},
            "2026-11-18": {"champion": {"roc_auc": 0.75, "log_loss": 0.4}, "shadow": "nothing published"},
            "2026-11-10": {"champion": "nothing published"},
        },
        "performance_breaches": ["2026-11-17 realized roc_auc 0.7000 below 0.72"],
        "stability_breaches": [],
    }
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in performance_registry("churn", evaluated).collect()
        for s in m.samples
    }

    def perf(kind: str, metric: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        labels = (("kind", kind), ("metric", metric), ("pipeline", "churn"))
        return ("batchscore_model_performance", labels)

    assert samples[perf("estimated", "roc_auc")] == 0.81
    assert samples[perf("estimated", "accuracy")] == 0.9
    assert samples[perf("realized", "roc_auc")] == 0.75
    assert samples[perf("realized", "log_loss")] == 0.4
    assert samples[("batchscore_performance_breached", (("pipeline", "churn"),))] == 1
    assert samples[("batchscore_score_unstable", (("pipeline", "churn"),))] == 0
    assert push_performance_metrics(None, "churn", evaluated) is False
