"""What a nightly run's stage results say about it: the time each stage took, and the run's
metrics pushed to the Pushgateway (from the stages' XComs).

Importing this module imports no Spark, XGBoost, Great Expectations or Evidently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchscore.settings import Settings

STAGE_TASKS = (
    "validate_raw",
    "build_features",
    "validate_features",
    "score",
    "validate_scores",
    "publish",
    "drift_report",
)


def stage_seconds(stage: dict[str, Any]) -> float:
    """What a stage took in this run: the reuse check for a reused output, else its compute time."""
    return float(stage["reuse_seconds"] if stage.get("reused") else stage["seconds"])


def push_metrics(
    context: Any, settings: Settings, *, success: bool, gate: dict[str, Any] | None = None
) -> bool:
    """Push the run's stage results (from XCom) to the Pushgateway, when one is configured."""
    from batchscore.telemetry.metrics import push_run_metrics

    if not settings.platform.pushgateway_url:
        return False
    ti = context["ti"]
    stages: list[dict[str, Any]] = []
    model: dict[str, Any] = {}
    try:
        for task_id in STAGE_TASKS:
            value = ti.xcom_pull(task_ids=task_id)
            if isinstance(value, dict):
                stages.append(value)
        model = ti.xcom_pull(task_ids="resolve_model") or {}
    except Exception:  # a failure in XCom itself still pushes success=0
        pass
    return push_run_metrics(
        settings.platform.pushgateway_url,
        settings.pipeline.name,
        stages,
        success=success,
        alert_webhook=settings.platform.alert_webhook,
        model_version=model.get("model_version"),
        gate=gate,
    )
