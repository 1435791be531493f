"""`schedule.on: partition`: the nightly DAG runs on its raw dataset's partitioned asset events,
and every task takes the day from the partition key; `labels.schedule: partition`: the outcomes
DAG runs on the label dataset's."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from batchscore.orchestration.assets import dataset_uri
from batchscore.orchestration.run_context import run_date_of
from batchscore.settings import load_platform, load_settings


def partition_pipeline():  # type: ignore[no-untyped-def]
    pipeline = load_settings("churn").pipeline
    return pipeline.model_copy(update={"schedule": pipeline.schedule.model_copy(update={"on": "partition"})})


def test_the_dag_is_scheduled_on_the_raw_datasets_partitions(tmp_path, monkeypatch):
    from airflow.sdk import PartitionedAssetTimetable
    from airflow.serialization.serialized_objects import DagSerialization

    from batchscore.orchestration.nightly_dag import build_nightly_dag

    monkeypatch.setenv("BATCHSCORE_LAKE_URL", str(tmp_path / "lake"))
    dag = build_nightly_dag(partition_pipeline())
    assert isinstance(dag.timetable, PartitionedAssetTimetable)
    assert dag.timetable.asset_condition.uri == f"file://{tmp_path / 'lake'}/raw/customers"
    assert not dag.deadline, "a partition run has no logical date to count a deadline from"
    trigger = dag.get_task("trigger_retrain")
    assert "xcom_pull(task_ids='drift_gate')['run_date']" in trigger.trigger_run_id
    serialized = DagSerialization.to_dict(dag)
    assert "PartitionedAssetTimetable" in str(serialized)
    cron = build_nightly_dag(load_settings("churn").pipeline)
    assert cron.schedule == "@daily" and cron.deadline


def labels_on_partitions():  # type: ignore[no-untyped-def]
    pipeline = load_settings("churn").pipeline
    return pipeline.model_copy(
        update={"labels": pipeline.labels.model_copy(update={"schedule": "partition"})}
    )


def test_the_outcomes_dag_is_scheduled_on_the_label_datasets_partitions(tmp_path, monkeypatch):
    from airflow.sdk import PartitionedAssetTimetable
    from airflow.serialization.serialized_objects import DagSerialization

    from batchscore.orchestration.outcomes_dag import build_outcomes_dag

    assert load_settings("churn").pipeline.labels.schedule == "nightly", "opt-in"
    monkeypatch.setenv("BATCHSCORE_LAKE_URL", str(tmp_path / "lake"))
    dag = build_outcomes_dag(labels_on_partitions())
    assert dag.dag_id == "batchscore_churn_outcomes"
    assert isinstance(dag.timetable, PartitionedAssetTimetable)
    asset = dag.timetable.asset_condition
    assert (asset.name, asset.uri) == (
        "batchscore.raw.churn_labels",
        f"file://{tmp_path / 'lake'}/raw/churn_labels",
    )
    assert [t.task_id for t in dag.tasks] == ["realize"]
    task = dag.get_task("realize")
    assert task.retries == 2 and task.retry_exponential_backoff and task.execution_timeout
    assert dag.max_active_runs == 1 and not dag.catchup and dag.is_paused_upon_creation is False
    assert "batchscore" in dag.tags and "batchscore.raw.churn_labels" in dag.doc_md
    assert "PartitionedAssetTimetable" in str(DagSerialization.to_dict(dag))


def test_s3_lakes_name_their_bucket():
    platform = load_platform({"BATCHSCORE_LAKE_URL": "s3://bucket/lake/"})
    assert dataset_uri(platform, "customers") == "s3://bucket/lake/raw/customers"


def test_the_run_date_comes_from_the_logical_date_or_the_partition_key():
    logical = datetime(2026, 11, 21, tzinfo=UTC)
    assert run_date_of({"logical_date": logical, "partition_key": None}) == date(2026, 11, 21)
    assert run_date_of({"logical_date": None, "partition_key": "2026-11-22"}) == date(2026, 11, 22)
    with pytest.raises(ValueError, match="partition key 'eu' is not a date"):
        run_date_of({"logical_date": None, "partition_key": "eu"})
    with pytest.raises(ValueError, match="never guesses the day"):
        run_date_of({"logical_date": None})
