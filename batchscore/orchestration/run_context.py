"""What a task knows about its run, built once per task from Airflow's context: the pipeline's
settings and the platform's, the lake, the model registry, the warehouse, the run's day, its id
and whether it was forced.

Importing this module imports no Spark, XGBoost, Great Expectations or Evidently; the lake,
the registry and the warehouse are opened when a task first asks for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchscore.models.registry import ModelRegistry
    from batchscore.settings import PipelineSettings, PlatformSettings, Settings
    from batchscore.storage.lake import Lake
    from batchscore.storage.warehouse import Warehouse


def run_date_of(context: Mapping[str, Any]) -> date:
    """The run's logical date, or for a partition-triggered run its partition key's date; runs
    with neither are refused rather than guessed."""
    logical = context.get("logical_date")
    if logical is None:
        key = context.get("partition_key")
        if key:
            try:
                return date.fromisoformat(str(key)[:10])
            except ValueError:
                raise ValueError(
                    f"partition key {key!r} is not a date (YYYY-MM-DD): it names no day to score"
                ) from None
        raise ValueError(
            "this run has no logical date; batchscore never guesses the day to score. "
            "Trigger it with a logical date (the UI's 'Logical date' field or --logical-date)."
        )
    return date(logical.year, logical.month, logical.day)


def forced(context: Mapping[str, Any]) -> bool:
    """Whether the run was triggered with `force` (recompute and republish, reuse nothing)."""
    return bool((context.get("params") or {}).get("force"))


@dataclass(frozen=True)
class RunContext:
    """One task's view of its run; stage functions receive it instead of Airflow's context."""

    settings: Settings
    run_date: date
    run_id: str
    try_number: int
    force: bool
    params: Mapping[str, Any]
    """The DAG run's params (`model_version`, `force`, `drift_from`)."""
    conf: Mapping[str, Any]
    """The DAG run's conf (a triggered retrain's `evidence`)."""
    ti: Any = field(repr=False, compare=False)
    """Airflow's task instance, for the XComs of other tasks."""

    @classmethod
    def of(cls, pipeline: str, context: Mapping[str, Any]) -> RunContext:
        """The run context of a task of `pipeline`, from the Airflow context it runs in."""
        from batchscore.settings import load_settings

        settings = load_settings(pipeline)
        ti = context["ti"]
        dag_run = context.get("dag_run")
        return cls(
            settings=settings,
            run_date=run_date_of(context),
            run_id=context["run_id"],
            try_number=ti.try_number,
            force=forced(context),
            params=dict(context.get("params") or {}),
            conf=dict(getattr(dag_run, "conf", None) or {}),
            ti=ti,
        )

    @classmethod
    def current(cls, pipeline: str) -> RunContext:
        """The run context of the task running now."""
        from airflow.sdk import get_current_context

        return cls.of(pipeline, get_current_context())

    @property
    def pipeline(self) -> PipelineSettings:
        return self.settings.pipeline

    @property
    def platform(self) -> PlatformSettings:
        return self.settings.platform

    @property
    def warehouse_url(self) -> str:
        return self.settings.platform.warehouse_url

    @cached_property
    def lake(self) -> Lake:
        from batchscore.storage.lake import Lake

        return Lake(self.platform.lake_url, self.platform)

    @cached_property
    def registry(self) -> ModelRegistry:
        """The pipeline model's registry (an S3 lake's is pulled into the working copy first)."""
        from batchscore.models.registry import ModelRegistry

        return ModelRegistry(self.lake, self.pipeline.model.name)

    def open_warehouse(self) -> Warehouse:
        from batchscore.storage.warehouse import open_warehouse

        return open_warehouse(self.warehouse_url)
