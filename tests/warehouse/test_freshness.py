"""Freshness on both warehouses: `pipeline_freshness` says when a pipeline is late, and
`latest_<table>` says which entities the newest slice left out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from batchscore.settings import ConfigError, ScheduleSettings
from batchscore.storage.warehouse import RunRecord
from tests.warehouse.slices import DAY, scores_file, target

NEXT_DAY = DAY + timedelta(days=1)


def run(
    pipeline: str, day: date, minutes: int | None, zone: str | None, status: str = "published"
) -> RunRecord:
    return RunRecord(
        run_id=f"run-{pipeline}-{day}", try_number=1, pipeline=pipeline, run_date=day,
        model_name="churn_xgb", model_version=1, status=status,
        publish_by_minutes=minutes, timezone=zone,
    )  # fmt: skip


def freshness(warehouse) -> dict[str, tuple]:  # type: ignore[no-untyped-def]
    rows = warehouse.query(
        "SELECT pipeline, last_published_day, model_version, last_run_status, next_due_at, is_late "
        "FROM pipeline_freshness ORDER BY pipeline"
    )
    return {row[0]: row[1:] for row in rows}


def test_a_pipeline_past_its_deadline_shows_late(warehouse, tmp_path):
    warehouse.publish_scores(target(), scores_file(tmp_path / "a", [1, 2], [0.1, 0.9]), expected_rows=2)
    # churn published DAY; the next day was due at NEXT_DAY 06:00 Berlin time (05:00 UTC in
    # November), long past: late.
    warehouse.record_run(run("churn", DAY, 6 * 60, "Europe/Berlin"))
    # A pipeline without a deadline is never late; one that has only failed has no published day.
    warehouse.record_run(run("nodeadline", DAY, None, "UTC"))
    warehouse.record_run(run("neverpublished", DAY, 6 * 60, "UTC", status="failed"))
    rows = freshness(warehouse)
    day, version, status, due, late = rows["churn"]
    assert (day, version, status, late) == (DAY, 1, "published", True)
    assert due.astimezone(UTC) == datetime.combine(NEXT_DAY, datetime.min.time(), UTC) + timedelta(hours=5)
    assert rows["nodeadline"][-2:] == (None, False)
    assert rows["neverpublished"] == (None, None, "failed", None, False)


def test_a_pipeline_within_its_deadline_is_not_late(warehouse, tmp_path):
    today = datetime.now(UTC).date()
    warehouse.publish_scores(
        target(day=today), scores_file(tmp_path / "a", [1], [0.5], run_date=today), expected_rows=1
    )
    warehouse.record_run(run("churn", today, 23 * 60 + 59, "UTC"))
    assert freshness(warehouse)["churn"][-1] is False  # tomorrow 23:59 is still ahead


def test_latest_scores_say_as_of_and_stale(warehouse, tmp_path):
    warehouse.publish_scores(
        target(), scores_file(tmp_path / "a", [1, 2, 3], [0.1, 0.2, 0.3]), expected_rows=3
    )
    newer = scores_file(tmp_path / "b", [1, 2], [0.4, 0.5], run_date=NEXT_DAY)
    warehouse.publish_scores(target(day=NEXT_DAY), newer, expected_rows=2)
    rows = warehouse.query(
        "SELECT customer_id, run_date, as_of, is_stale FROM latest_scores_churn ORDER BY 1"
    )
    assert rows == [(1, NEXT_DAY, NEXT_DAY, False), (2, NEXT_DAY, NEXT_DAY, False), (3, DAY, NEXT_DAY, True)]


def test_publish_by_is_checked():
    start = date(2026, 1, 1)
    assert ScheduleSettings(start_date=start, publish_by="06:30").publish_by_minutes == 390
    assert ScheduleSettings(start_date=start).publish_by_minutes is None
    for bad in ({"publish_by": "6:00"}, {"publish_by": "24:00"}, {"timezone": "Mars/Olympus"}):
        with pytest.raises((ConfigError, ValueError)):
            ScheduleSettings(start_date=start, **bad)
