"""What a nightly run's stage results say about it: the time each stage took, and the run's
metrics pushed to the Pushgateway (from the stages' XComs).

Importing this module imports no Spark, XGBoost, Great Expectations or Evidently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batchscore.models.metadata import typed_field
from batchscore.models.pinned import BadStageResult

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


@dataclass(frozen=True)
class StageTiming:
    """What every stage's XCom says about its cost: the time it took (None when it reports none),
    its CPU seconds when measured, and for a reused output the time the reuse check took."""

    stage: str
    seconds: float | None = None
    cpu_seconds: float | None = None
    reused: bool = False
    reuse_seconds: float | None = None

    @property
    def elapsed(self) -> float | None:
        """What the stage took in this run: the reuse check for a reused output, else its compute
        time; None for a stage that reports no `seconds`."""
        if self.seconds is None:
            return None
        return self.reuse_seconds if self.reused else self.seconds

    @classmethod
    def from_xcom(cls, value: Any) -> StageTiming:
        """Read a stage's timing fields back from its XCom, checking each one it carries."""
        if not isinstance(value, Mapping):
            raise BadStageResult(f"a stage's result: expected a mapping, found {type(value).__name__}")
        stage = typed_field(value, "stage", str, "a stage's result", BadStageResult)
        where = f"{stage}'s result"
        reused = bool(value.get("reused"))
        return cls(
            stage=stage,
            seconds=_seconds(value, "seconds", where),
            cpu_seconds=_seconds(value, "cpu_seconds", where),
            reused=reused,
            reuse_seconds=_seconds(value, "reuse_seconds", where, required=reused),
        )


def _seconds(value: Mapping[str, Any], name: str, where: str, required: bool = False) -> float | None:
    """`value[name]` as seconds (an int or a float); None when absent, unless `required`."""
    seconds = value.get(name)
    if seconds is None and not required:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        found = "nothing" if seconds is None else type(seconds).__name__
        raise BadStageResult(f"{where}: field {name!r} must be a number, found {found}")
    return float(seconds)


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
