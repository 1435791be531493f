"""The publish deadline: when a day is due, the DAG's Airflow deadline alert, and the callback
that alerts only when the warehouse still has no slice for the day (both warehouses)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from batchscore.orchestration.deadlines import deadline_alert, deadline_missed, due_at, publish_interval
from batchscore.settings import ScheduleSettings, load_settings
from tests.warehouse.slices import DAY, scores_file, target
from tests.webhook import collecting_webhook

BERLIN = ScheduleSettings(start_date=DAY, publish_by="06:00", timezone="Europe/Berlin")


def test_the_day_is_due_at_publish_by_local_time_on_that_day():
    # The rule pipeline_freshness applies: day D is due at D's publish_by, local time. Berlin is
    # UTC+1 in November and UTC+2 in July: the interval from the logical date (midnight UTC)
    # follows daylight saving time.
    assert due_at(BERLIN, DAY) == datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
    assert publish_interval(BERLIN, DAY) == timedelta(hours=5)
    assert publish_interval(BERLIN, date(2026, 7, 1)) == timedelta(hours=4)
    kolkata = ScheduleSettings(start_date=DAY, publish_by="23:45", timezone="Asia/Kolkata")
    assert publish_interval(kolkata, DAY) == timedelta(hours=18, minutes=15)
    early = ScheduleSettings(start_date=DAY, publish_by="04:00", timezone="Asia/Kolkata")
    assert publish_interval(early, DAY) == -timedelta(hours=1, minutes=30), "late by construction"
    assert due_at(ScheduleSettings(start_date=DAY), DAY) is None


def test_the_nightly_dag_carries_the_deadline_alert_and_it_serializes():
    from airflow.serialization.serialized_objects import DagSerialization

    from batchscore.orchestration.nightly_dag import build_nightly_dag

    pipeline = load_settings("churn").pipeline
    alert = deadline_alert(pipeline, today=DAY)
    assert alert is not None and alert.interval == timedelta(hours=5)
    assert alert.callback.path == "batchscore.orchestration.deadlines.deadline_missed"
    assert alert.callback.kwargs == {"pipeline": "churn"}
    dag = build_nightly_dag(pipeline)
    assert [a.reference.reference_name for a in dag.deadline] == ["DagRunLogicalDateDeadline"]
    assert "deadline" in json.dumps(DagSerialization.to_dict(dag), default=str)
    without = pipeline.model_copy(update={"schedule": ScheduleSettings(start_date=DAY)})
    assert deadline_alert(without) is None and not build_nightly_dag(without).deadline


@pytest.fixture
def webhook(monkeypatch):  # type: ignore[no-untyped-def]
    with collecting_webhook() as (url, received):
        monkeypatch.setenv("BATCHSCORE_ALERT_WEBHOOK", url)
        yield received


def test_a_missed_deadline_alerts_only_while_the_day_is_unpublished(
    warehouse, warehouse_url, webhook, tmp_path, monkeypatch
):
    monkeypatch.setenv("BATCHSCORE_WAREHOUSE_URL", warehouse_url)
    # What Airflow's scheduler hands the triggerer: the DagRun as JSON, among other keys.
    context = {"dag_run": {"logical_date": "2026-11-21T00:00:00Z"}, "deadline": {"id": "d1"}}
    assert asyncio.run(deadline_missed(context, pipeline="churn")) is True
    assert webhook == [
        {
            "subject": "batchscore churn: 2026-11-21 not published by its deadline",
            "details": {
                "pipeline": "churn",
                "run_date": "2026-11-21",
                "publish_by": "06:00",
                "timezone": "Europe/Berlin",
                "due_at": "2026-11-21 05:00:00+00:00",
            },
        }
    ]
    warehouse.publish_scores(target(), scores_file(tmp_path / "s", [1, 2], [0.2, 0.7]), expected_rows=2)
    assert asyncio.run(deadline_missed(context, pipeline="churn")) is False
    assert len(webhook) == 1, "a day published late but before the check is not alerted"
    with pytest.raises(ValueError, match="without the run's logical date"):
        asyncio.run(deadline_missed({"deadline": {}}, pipeline="churn"))
