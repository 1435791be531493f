"""The publish deadline as an Airflow deadline alert: `schedule.publish_by` local time on the
run's day (the rule `pipeline_freshness` applies), in the pipeline's time zone.

Airflow measures a deadline as an interval after a reference; the reference here is the run's
logical date (midnight UTC of the scored day) and the interval reaches that day's local
`publish_by` (negative when the zone's `publish_by` falls before midnight UTC: such a schedule
is late by construction and the alert fires at once). The interval is computed for the day the DAG file is parsed, so it follows
daylight saving time for the nightly run; a backfill of a day on the other side of a DST change
is off by that hour (its deadline passed long ago either way). When Airflow fires it (from the
triggerer), `deadline_missed` checks the warehouse, the truth about what is published, and
alerts only when the day's slice is still missing.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk.definitions.deadline import DeadlineAlert

    from batchscore.settings import PipelineSettings, ScheduleSettings

log = logging.getLogger("batchscore.orchestration.deadlines")


def due_at(schedule: ScheduleSettings, run_date: date) -> datetime | None:
    """When `run_date`'s scores are due (UTC): `publish_by` local time on that day."""
    due = schedule.due_at(run_date)
    return None if due is None else due.astimezone(UTC)


def publish_interval(schedule: ScheduleSettings, run_date: date) -> timedelta | None:
    """From `run_date`'s logical date (midnight UTC) to its due time."""
    due = due_at(schedule, run_date)
    if due is None:
        return None
    return due - datetime.combine(run_date, time(), tzinfo=UTC)


def deadline_alert(pipeline: PipelineSettings, today: date | None = None) -> DeadlineAlert | None:
    """The DAG's deadline alert, or None when the pipeline declares no `publish_by`."""
    from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference

    interval = publish_interval(pipeline.schedule, today or datetime.now(UTC).date())
    if interval is None:
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=interval,
        callback=AsyncCallback(
            "batchscore.orchestration.deadlines.deadline_missed",
            kwargs={"pipeline": pipeline.name},
        ),
        name=f"publish_by {pipeline.schedule.publish_by} {pipeline.schedule.timezone}",
    )


async def deadline_missed(context: dict[str, Any] | None = None, *, pipeline: str) -> bool:
    """Airflow's callback for a missed deadline: alert unless the day turns out published."""
    import asyncio

    return await asyncio.to_thread(check_published, pipeline, _run_date(context or {}))


def _run_date(context: dict[str, Any]) -> date:
    dag_run = context.get("dag_run")
    logical = getattr(dag_run, "logical_date", None)
    if logical is None and isinstance(dag_run, dict):
        logical = dag_run.get("logical_date")
    if logical is None:
        raise ValueError(f"deadline callback without the run's logical date: {sorted(context)}")
    if isinstance(logical, str):
        logical = datetime.fromisoformat(logical)
    return logical.astimezone(UTC).date()


def check_published(pipeline: str, run_date: date) -> bool:
    """Alert when `run_date` has no published champion slice; returns whether it alerted."""
    from batchscore.settings import load_settings
    from batchscore.storage.warehouse import open_warehouse
    from batchscore.telemetry.alerts import send_alert

    settings = load_settings(pipeline)
    schedule = settings.pipeline.schedule
    warehouse = open_warehouse(settings.platform.warehouse_url)
    warehouse.migrate()
    published = warehouse.query(
        "SELECT count(*) FROM published_slices WHERE pipeline = ? AND scores_table = ? AND run_date = ?",
        [pipeline, settings.pipeline.scores_table, run_date],
    )[0][0]
    if published:
        log.info("deadline passed for %s %s, but the day is published: no alert", pipeline, run_date)
        return False
    send_alert(
        settings.platform.alert_webhook,
        f"batchscore {pipeline}: {run_date} not published by its deadline",
        {
            "pipeline": pipeline,
            "run_date": run_date.isoformat(),
            "publish_by": schedule.publish_by,
            "timezone": schedule.timezone,
            "due_at": due_at(schedule, run_date),
        },
    )
    return True
