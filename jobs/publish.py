"""Publish one day's scores to the warehouse (write-audit-publish) and record the run.

python -m jobs.publish --pipeline churn --date 2026-11-21 --model-version 1 --run-id manual-1
"""

from __future__ import annotations

import sys
import time
from datetime import date
from typing import TYPE_CHECKING, Any

from batchscore.errors import PermanentFailure
from batchscore.quality.quarantine_gate import features_source, held_rows
from batchscore.settings import Settings, load_settings
from batchscore.storage.lake import Lake, partition_checksum
from batchscore.storage.manifest import BadManifest, StageManifest, read_manifest
from batchscore.storage.reuse import features_manifest
from batchscore.storage.warehouse import (
    QuarantineSlice,
    ReasonsSlice,
    RunRecord,
    ScoresSlice,
    open_warehouse,
)
from batchscore.storage.warehouse.lineage import PUBLISHED_LINEAGE_SQL

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa

    from batchscore.storage.warehouse import Warehouse

UNCHANGED = "already published with the same inputs and model version"
"""Why a publish was skipped: the slice holds exactly what this run would write."""


class ContextUnavailable(PermanentFailure, RuntimeError):
    """The raw partition cannot give the scores their context columns; nothing was published."""


def run(
    settings: Settings,
    run_date: date,
    model_version: int,
    run_id: str,
    try_number: int = 1,
    stage_seconds: dict[str, float] | None = None,
    stage_cpu_seconds: dict[str, float] | None = None,
    model_source: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Publish the scores partition write-audit-publish and record the attempt with its cost.

    `stage_seconds` and `stage_cpu_seconds` are what the upstream stages of the run took;
    the run's CPU seconds per million rows counts theirs plus this process's publish. When the
    slice already holds these scores (same fingerprint, input checksum and rows) nothing is
    written but the attempt, as `unchanged`, unless `force`.
    """
    cpu_started = time.process_time()
    pipeline = settings.pipeline
    warehouse = open_warehouse(settings.platform.warehouse_url)
    published, manifest = publish_slice(
        settings, warehouse, run_date, model_version, run_id, pipeline.scores_table, force, with_reasons=True
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
            status="unchanged" if "skipped" in published else "published",
            rows_in=manifest.need(manifest.rows, "rows") + int(published.get("quarantined_rows", 0)),
            rows_out=published["rows"],
            input_checksum=manifest.need(manifest.input_checksum, "input_checksum"),
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
    force: bool = False,
    with_reasons: bool = False,
) -> tuple[dict[str, Any], StageManifest]:
    """Write-audit-publish one model version's scores partition of `run_date` into `table`, with
    its lineage; a slice that already holds these scores is left alone (`skipped`) unless `force`.

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
    manifest = features_manifest(features_path)
    input_checksum = manifest.need(manifest.input_checksum, "input_checksum")
    reasons = held = None
    if with_reasons:
        rows_held = held_rows(settings, lake, run_date, input_checksum)
        held = QuarantineSlice(pipeline.quarantine_table, rows_held)
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
        input_checksum=input_checksum,
        scores_fingerprint=scores_fingerprint_of(scores_path),
    )
    rows = manifest.need(manifest.rows, "rows")
    unchanged = None if force else unchanged_slice(warehouse, target, rows)
    if unchanged is not None:
        return unchanged, manifest
    context = read_context(settings, lake, run_date, manifest)
    published = warehouse.publish_scores(
        target, scores_path, expected_rows=rows, context=context, reasons=reasons, quarantine=held
    ).as_dict()
    if reasons is not None and reasons.path is not None:
        published["reasons_table"] = reasons.table
    if held is not None and held.rows is not None:
        published |= {"quarantine_table": held.table, "quarantined_rows": held.rows.num_rows}
    return published, manifest


def read_context(settings: Settings, lake: Lake, run_date: date, manifest: StageManifest) -> pa.Table | None:
    """The entity key and `output.context_columns` of the day's raw partition (None without any).

    The partition must be the one the features were built from (its checksum is the features
    manifest's `input_checksum`): a partition relanded since would give the scores another
    day's context. Only the key and the context columns are read.
    """
    import pyarrow.parquet as pq

    pipeline = settings.pipeline
    names = pipeline.output.context_columns
    if not names:
        return None
    raw = lake.raw_partition(pipeline.dataset.name, run_date)
    files = lake.require_complete(raw)
    checksum = partition_checksum(raw)
    if checksum != manifest.input_checksum:
        raise ContextUnavailable(
            f"raw partition {raw} changed since the features were built (checksum {checksum[:12]}, features "
            f"built from {str(manifest.input_checksum)[:12]}); rebuild the features and scores of "
            f"{run_date} before publishing its context columns; nothing was published"
        )
    files = features_source(settings, lake, run_date, files, checksum)[0]  # the rows kept
    dataset = pq.ParquetDataset([str(f) for f in files], partitioning=None)
    wanted = [pipeline.dataset.entity_key, *names]
    missing = [name for name in wanted if name not in dataset.schema.names]
    if missing:
        raise ContextUnavailable(
            f"raw partition {raw} has no column {', '.join(missing)} (output.context_columns); "
            "nothing was published"
        )
    return dataset.read(columns=wanted)


def scores_fingerprint_of(scores_path: Path) -> str | None:
    """The fingerprint the score stage wrote into the partition's manifest (None: none written)."""
    try:
        fingerprint = read_manifest(scores_path, StageManifest).fingerprint
    except BadManifest:
        return None
    return fingerprint or None


def unchanged_slice(warehouse: Warehouse, target: ScoresSlice, rows: int) -> dict[str, Any] | None:
    """The skip result when the published slice has this fingerprint, input checksum and row
    count; None when it must be (re)published. Slices without lineage are always republished."""
    if target.scores_fingerprint is None:
        return None
    key = [target.table, target.pipeline, target.run_date, target.model_version]
    warehouse.migrate()  # a warehouse from before migration 7 gets its lineage columns first
    found = warehouse.query(PUBLISHED_LINEAGE_SQL, key)
    if not found:
        return None
    row_count, input_checksum, fingerprint, published_by, published_at = found[0]
    if (int(row_count), input_checksum, fingerprint) != (
        rows,
        target.input_checksum,
        target.scores_fingerprint,
    ):
        return None
    return {
        "skipped": UNCHANGED,
        "rows": int(row_count),
        "table": target.table,
        "published_by": published_by,
        "published_at": str(published_at),
        "seconds": 0.0,
    }


def run_shadow(
    settings: Settings, run_date: date, challenger_version: int, run_id: str, force: bool = False
) -> dict[str, Any]:
    """Publish the challenger's shadow scores to `shadow_<scores table>` (write-audit-publish).

    Same columns and audit as the champion's slice, in its own table: shadow scores never
    reach the table analysts and campaigns read.
    """
    table = settings.pipeline.shadow_scores_table
    warehouse = open_warehouse(settings.platform.warehouse_url)
    published, _ = publish_slice(settings, warehouse, run_date, challenger_version, run_id, table, force)
    return {"stage": "publish_shadow", **published, "model_version": challenger_version}


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument("--model-version", type=int, required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--force", action="store_true", help="republish even when the slice is unchanged")
    args = parser.parse_args(argv)
    settings = load_settings(args.pipeline)
    print_result(run(settings, args.date, args.model_version, args.run_id, force=args.force))


if __name__ == "__main__":
    main(sys.argv[1:])
