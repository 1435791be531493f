"""Lake datasets as Airflow assets, so a pipeline can run when its day's partition lands.

With `schedule.on: partition` the nightly DAG is scheduled by a `PartitionedAssetTimetable` on
the raw dataset's asset (`file:///<lake>/raw/<dataset>` or `s3://bucket/prefix/raw/<dataset>`)
instead of cron: each asset event carrying a `partition_key` (the partition's date,
`YYYY-MM-DD`) starts one run for that day, whenever it arrives. Whoever lands the partition
announces it, the way a landing job would, through Airflow's REST API:

    POST /api/v2/assets/events  {"asset_id": <id>, "partition_key": "2026-11-21"}

Such runs have no logical date; every task takes the run date from the partition key
(`run_context.run_date_of`).

With `labels.schedule: partition` the pipeline's label dataset is an asset too
(`batchscore.raw.<labels dataset>`): announcing a label partition (its arrival date as the key)
runs the outcomes DAG (`outcomes_dag.py`), which writes the realized performance of the days
those labels refer to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Asset

    from batchscore.settings import PipelineSettings, PlatformSettings


def dataset_uri(platform: PlatformSettings, dataset: str) -> str:
    """Where the dataset's partitions land, as a URI (`s3://...` or `file:///...`)."""
    if platform.lake_is_s3:
        return f"{platform.lake_url.rstrip('/')}/raw/{dataset}"
    root = platform.lake_url.removeprefix("file://")
    return f"file://{root.rstrip('/')}/raw/{dataset}"


def dataset_asset(platform: PlatformSettings, dataset: str) -> Asset:
    from airflow.sdk import Asset

    return Asset(name=f"batchscore.raw.{dataset}", uri=dataset_uri(platform, dataset))


def nightly_schedule(pipeline: PipelineSettings, platform: PlatformSettings | None = None) -> Any:
    """The cron expression, or the partitioned-asset timetable on the pipeline's raw dataset."""
    if pipeline.schedule.on == "cron":
        return pipeline.schedule.cron
    return partition_timetable(pipeline.dataset.name, platform)


def labels_schedule(pipeline: PipelineSettings, platform: PlatformSettings | None = None) -> Any:
    """The partitioned-asset timetable on the pipeline's label dataset (the outcomes DAG's)."""
    return partition_timetable(pipeline.labels.dataset, platform)


def partition_timetable(dataset: str, platform: PlatformSettings | None = None) -> Any:
    """One run per partition key announced on the dataset's asset."""
    from airflow.sdk import PartitionedAssetTimetable

    from batchscore.settings import load_platform

    return PartitionedAssetTimetable(assets=dataset_asset(platform or load_platform(), dataset))
