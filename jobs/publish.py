"""Publish one day's scores to the warehouse (write-audit-publish) and record the run.

python -m jobs.publish --pipeline churn --date 2026-11-21 --model-version 1 --run-id manual-1
"""

from __future__ import annotations

import sys
import time
from datetime import date
from typing import TYPE_CHECKING, Any

from batchscore.settings import Settings, load_settings
from batchscore.storage.lake import Lake
from batchscore.storage.warehouse import ReasonsSlice, RunRecord, ScoresSlice, open_warehouse
from jobs.build_features import read_manifest

if TYPE_CHECKING:
    from batchscore.storage.warehouse import Warehouse


def run(
    settings: Settings,
    run_date: date,
    model_version: int,
    run_id: str,
    try_number: int = 1,
    stage_seconds: dict[str, float] | None = None,
    stage_cpu_seconds: dict[str, float] | None = None,
    model_source: str | None = None,
) -> dict[str, Any]:
    """Publish the scores partition write-audit-publish and record the attempt with its cost.

    `stage_seconds` and `stage_cpu_seconds` are what the upstream stages of the run took;
    the run's CPU seconds per million rows counts theirs plus this process's publish.
    """
    cpu_started = time.process_time()
    pipeline = settings.pipeline
    warehouse = open_warehouse(settings.platform.warehouse_url)
    published, manifest = publish_slice(
        settings, warehouse, run_date, model_version, run_id, pipeline.scores_table, with_reasons=True
    )
    timings = {**(stage_seconds or {}), "publish": published["seconds"]}
    publish_cpu = time.process_time() - cpu_started
    cpu_seconds = sum((stage_cpu_seconds or {}).values()) + publish_cpu
    warehouse.record_run(
        RunRecord(
            run_id=run_id,
            try_number=try_number,
            pipeline=pipeline.name,
            run_date=run_date,
            model_name=pipeline.model.name,
            model_version=model_version,
            status="published",
            rows_in=int(manifest["rows"]),
            rows_out=published["rows"],
            input_checksum=manifest["input_checksum"],
            stage_seconds=timings,
            cpu_seconds=cpu_seconds,
            model_source=model_source,
            publish_by_minutes=pipeline.schedule.publish_by_minutes,
            timezone=pipeline.schedule.timezone,
        )
    )
    return {
        "stage": "publish",
        **published,
        "cpu_seconds": round(publish_cpu, 3),
        "run_cpu_s_per_million_rows": round(cpu_seconds / published["rows"] * 1e6, 3)
        if published["rows"]
        else None,
        "warehouse": redacted(settings.platform.warehouse_url),
    }


def redacted(url: str) -> str:
    """The warehouse URL without a password, fit for logs and XCom."""
    import re

    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


def publish_slice(
    settings: Settings,
    warehouse: Warehouse,
    run_date: date,
    model_version: int,
    run_id: str,
    table: str,
    with_reasons: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write-audit-publish one model version's scores partition of `run_date` into `table`.

    `with_reasons` (the champion's slice): its reason codes (`explain:`) are published in the
    same transaction; without `explain:` the slice's earlier reasons are removed with it.
    Returns the publish result and the features partition's manifest (rows, input checksum).
    """
    pipeline = settings.pipeline
    lake = Lake(settings.platform.lake_url)
    features_path = lake.features_partition(pipeline.name, run_date)
    scores_path = lake.scores_partition(pipeline.name, model_version, run_date)
    lake.require_complete(features_path)
    lake.require_complete(scores_path)
    manifest = read_manifest(features_path)
    reasons = None
    if with_reasons:
        reasons_path = lake.reasons_partition(pipeline.name, model_version, run_date)
        if pipeline.explain is not None:
            lake.require_complete(reasons_path)
        reasons = ReasonsSlice(pipeline.reasons_table, reasons_path if pipeline.explain else None)
    target = ScoresSlice(
        pipeline=pipeline.name,
        table=table,
        entity_key=pipeline.dataset.entity_key,
        run_date=run_date,
        model_name=pipeline.model.name,
        model_version=model_version,
        run_id=run_id,
        task=pipeline.model.task,
        classes=tuple(pipeline.model.classes) if pipeline.model.task == "multiclass" else (),
    )
    published = warehouse.publish_scores(
        target, scores_path, expected_rows=int(manifest["rows"]), reasons=reasons
    )
    if reasons is not None and reasons.path is not None:
        published["reasons_table"] = reasons.table
    return published, manifest


def run_shadow(settings: Settings, run_date: date, challenger_version: int, run_id: str) -> dict[str, Any]:
    """Publish the challenger's shadow scores to `shadow_<scores table>` (write-audit-publish).

    Same columns and audit as the champion's slice, in its own table: shadow scores never
    reach the table analysts and campaigns read.
    """
    table = settings.pipeline.shadow_scores_table
    warehouse = open_warehouse(settings.platform.warehouse_url)
    published, _ = publish_slice(settings, warehouse, run_date, challenger_version, run_id, table)
    return {"stage": "publish_shadow", **published, "model_version": challenger_version}


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument("--model-version", type=int, required=True)
    parser.add_argument("--run-id", required=True)
    args = parser.parse_args(argv)
    print_result(run(load_settings(args.pipeline), args.date, args.model_version, args.run_id))


if __name__ == "__main__":
    main(sys.argv[1:])
