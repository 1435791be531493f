"""The raw gate with row quarantine (`validation.quarantine`), and what later stages read of it.

validate_raw judges every row (`batchscore.quality.quarantine`). Above the tolerance the gate
runs on the whole day so its report shows every failure, and the run fails: nothing is
published. Within it the suite gates the remaining rows; those are written to the day's clean
partition (only when rows were held aside), and the held-aside rows, with the rules they
broke, to the quarantine partition whose `_QUARANTINE.json` records the counts and the raw
partition's checksum. build_features reads the clean rows; publish puts the quarantined rows
into `quarantine_<pipeline>` in the transaction that publishes the day's scores, so a rerun
replaces both or neither.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from datetime import date
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from batchscore.quality.quarantine import (
    QuarantineExceeded,
    Verdict,
    held_verdict,
    judge,
    judge_by_column,
    quarantine_rows,
    row_rules,
)
from batchscore.settings import Settings
from batchscore.storage.lake import Lake, PartitionError, partition_checksum
from batchscore.storage.manifest import QuarantineManifest, read_manifest, write_manifest
from batchscore.telemetry.alerts import send_alert

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

    from batchscore.quality.suites import Suite
    from batchscore.storage.parquet import Footprint

log = logging.getLogger(__name__)

MANIFEST_NAME = QuarantineManifest.FILE
BATCH_ROWS = 262_144


def gate_raw(
    settings: Settings,
    lake: Lake,
    suite: Suite,
    run_date: date,
    table: pa.Table,
    where: dict[str, Any],
) -> tuple[Any, dict[str, Any]]:
    """Judge each row, fail above the tolerance, gate the rest and write both partitions.

    Returns the gate's outcome (on the kept rows) and the quarantine summary.
    """
    from batchscore.quality.validation import validate_table

    pipeline = settings.pipeline
    started = time.perf_counter()
    verdict = judge(table, row_rules(suite, table.schema))
    summary = _summary(settings, verdict)
    workers = pipeline.validation.pandas_workers
    if verdict.quarantined > summary["max_rows"]:
        outcome = validate_table(
            table, suite, raise_on_failure=False, workers=workers, quarantine=summary, **where
        )
        raise QuarantineExceeded(outcome, _exceeded(settings, verdict, summary, where))
    kept = table.filter(~verdict.bad) if verdict.quarantined else table
    outcome = validate_table(kept, suite, workers=workers, quarantine=summary, **where)
    clean = _write_clean(lake, pipeline.name, run_date, kept) if verdict.quarantined else None
    held = quarantine_rows(table, verdict, pipeline.dataset.entity_key, suite.pii)
    _record(settings, lake, suite, run_date, verdict, held, clean, where["partition"], summary)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return outcome, summary


def gate_raw_in_parts(
    settings: Settings,
    lake: Lake,
    suite: Suite,
    run_date: date,
    footprint: Footprint,
    where: dict[str, Any],
    spark: SparkSession,
) -> tuple[Any, dict[str, Any]]:
    """gate_raw for a day past the in-memory limits (`footprint`: what the raw files' footers
    say): the rows judged one column at a time, the suite on Spark, the clean partition written
    a batch at a time; no step holds the whole day."""
    import pyarrow as pa

    from batchscore.quality.validation import validate_spark

    pipeline = settings.pipeline
    started = time.perf_counter()

    column_of_day = partial(read_column, footprint.files, where["partition"])
    verdict = judge_by_column(column_of_day, footprint.rows, row_rules(suite, footprint.schema))
    summary = _summary(settings, verdict)

    def gated(path: Path, rows: int, raise_on_failure: bool = True) -> Any:
        frame = spark.read.parquet(str(path))
        return validate_spark(
            frame,
            footprint.schema,
            rows,
            suite,
            raise_on_failure=raise_on_failure,
            quarantine=summary,
            **where,
        )

    raw = Path(where["partition"])
    if verdict.quarantined > summary["max_rows"]:
        outcome = gated(raw, footprint.rows, raise_on_failure=False)
        raise QuarantineExceeded(outcome, _exceeded(settings, verdict, summary, where))
    if not verdict.quarantined:
        outcome, clean = gated(raw, footprint.rows), None
        held = quarantine_rows(pa.table({}), verdict, pipeline.dataset.entity_key, suite.pii)
    else:
        clean = lake.clean_partition(pipeline.name, run_date)
        with lake.staged_partition(clean) as staging:
            held_table = split_files(footprint.files, verdict.bad, staging)
            # a failing suite discards the staged clean rows
            outcome = gated(staging, footprint.rows - verdict.quarantined)
        index = np.flatnonzero(verdict.bad)
        held = quarantine_rows(
            held_table, held_verdict(verdict, index), pipeline.dataset.entity_key, suite.pii
        )
    _record(settings, lake, suite, run_date, verdict, held, clean, where["partition"], summary)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return outcome, summary


def read_column(files: list[Path], partition: str, name: str) -> pa.Table:
    """One column of every row of the partition's files; a corrupt file fails clearly."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pa.concat_tables(pq.read_table(f, columns=[name]) for f in files)
    except (pa.ArrowInvalid, OSError) as exc:
        raise PartitionError(f"partition {partition} is unreadable: {exc}") from exc


def split_files(files: list[Path], bad: np.ndarray, staging: Path) -> pa.Table:
    """Write each file's kept rows to `staging` (one file per input file, a batch at a time);
    return the held-aside rows (few: at most the tolerance) as one table."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    staging.mkdir(parents=True)
    held, offset = [], 0
    for number, path in enumerate(files):
        source = pq.ParquetFile(path)
        with pq.ParquetWriter(staging / f"part-{number:05d}.parquet", source.schema_arrow) as writer:
            for batch in source.iter_batches(batch_size=BATCH_ROWS):
                mask = pa.array(bad[offset : offset + batch.num_rows])
                offset += batch.num_rows
                writer.write_batch(batch.filter(pc.invert(mask)))
                if mask.true_count:
                    held.append(pa.Table.from_batches([batch.filter(mask)]))
    if offset != len(bad):
        raise PartitionError(f"the raw files hold {offset:,} rows where {len(bad):,} were judged")
    return pa.concat_tables(held)


def _summary(settings: Settings, verdict: Verdict) -> dict[str, Any]:
    pipeline = settings.pipeline
    tolerance = pipeline.validation.quarantine
    assert tolerance is not None
    return {
        "rows": verdict.rows,
        "quarantined_rows": verdict.quarantined,
        "kept_rows": verdict.rows - verdict.quarantined,
        "max_share": tolerance.max_share,
        "max_rows": math.floor(tolerance.max_share * verdict.rows),
        "rules": verdict.counts,
        "table": pipeline.quarantine_table,
    }


def _exceeded(settings: Settings, verdict: Verdict, summary: dict[str, Any], where: dict[str, Any]) -> str:
    share = summary["max_share"]
    return (
        f"quarantine exceeded: pipeline {settings.pipeline.name}, partition {where['partition']}: "
        f"{verdict.describe()} break row-level expectations, "
        f"{verdict.quarantined / verdict.rows:.3%} of the day, above validation.quarantine.max_share "
        f"{share:.3%} ({summary['max_rows']:,} rows); nothing was published"
    )


def _record(
    settings: Settings,
    lake: Lake,
    suite: Suite,
    run_date: date,
    verdict: Verdict,
    held: pa.Table,
    clean: Path | None,
    raw_partition: str,
    summary: dict[str, Any],
) -> None:
    """Write the quarantine partition (after the clean one, when rows were held aside); alert."""
    pipeline = settings.pipeline
    manifest = QuarantineManifest(
        **summary,
        pipeline=pipeline.name,
        run_date=run_date.isoformat(),
        raw_partition=raw_partition,
        raw_checksum=partition_checksum(Path(raw_partition)),
        suite_sha256=hashlib.sha256(Path(suite.path).read_bytes()).hexdigest(),
        clean_partition=str(clean) if clean else None,
        clean_checksum=partition_checksum(clean) if clean else None,
    )
    write_held(lake, pipeline.name, run_date, held, manifest)
    if verdict.quarantined:
        log.warning("quarantine: %s held aside in %s", verdict.describe(), pipeline.quarantine_table)
        send_alert(
            settings.platform.alert_webhook,
            f"batchscore {pipeline.name}: {verdict.quarantined:,} rows quarantined on {run_date}",
            {"pipeline": pipeline.name, "run_date": run_date, **summary},
        )


def _write_clean(lake: Lake, pipeline: str, run_date: date, kept: pa.Table) -> Path:
    import pyarrow.parquet as pq

    final = lake.clean_partition(pipeline, run_date)
    with lake.staged_partition(final) as staging:
        staging.mkdir(parents=True)
        pq.write_table(kept, staging / "part-00000.parquet")
    return final


def write_held(
    lake: Lake, pipeline: str, run_date: date, held: pa.Table, manifest: QuarantineManifest
) -> None:
    """The quarantine partition: the held-aside rows and `_QUARANTINE.json`, in one rename."""
    import pyarrow.parquet as pq

    with lake.staged_partition(lake.quarantine_partition(pipeline, run_date)) as staging:
        staging.mkdir(parents=True)
        pq.write_table(held, staging / "part-00000.parquet")
        write_manifest(staging, manifest)


def read_verdict(lake: Lake, pipeline: str, run_date: date, raw_checksum: str) -> QuarantineManifest:
    """The day's quarantine manifest; fails when validate_raw judged another raw partition."""
    partition = lake.quarantine_partition(pipeline, run_date)
    if not lake.landed(partition):
        raise PartitionError(
            f"{run_date} has no quarantine verdict ({partition}): under validation.quarantine, "
            "validate_raw decides which rows go on; run the day from validate_raw; nothing was published"
        )
    lake.require_complete(partition)
    manifest = read_manifest(partition, QuarantineManifest, "quarantine partition")
    if manifest.raw_checksum != raw_checksum:
        raise PartitionError(
            f"the raw partition of {run_date} changed since validate_raw held its rows aside "
            f"(quarantine {partition}); rerun the day from validate_raw; nothing was published"
        )
    return manifest


def features_source(
    settings: Settings, lake: Lake, run_date: date, raw_files: list[Path], raw_checksum: str
) -> tuple[list[Path], str | None]:
    """The files build_features reads (the clean rows when rows were held aside) and what the
    fingerprint must add for them (None without quarantine)."""
    pipeline = settings.pipeline
    if pipeline.validation.quarantine is None:
        return raw_files, None
    manifest = read_verdict(lake, pipeline.name, run_date, raw_checksum)
    if not manifest.quarantined_rows:
        return raw_files, "none held aside"
    clean = lake.clean_partition(pipeline.name, run_date)
    files = lake.require_complete(clean)
    if partition_checksum(clean) != manifest.clean_checksum:
        raise PartitionError(f"clean partition {clean} is not the one validate_raw wrote; rerun the day")
    return files, f"clean {manifest.clean_checksum}"


def held_rows(settings: Settings, lake: Lake, run_date: date, raw_checksum: str) -> pa.Table | None:
    """The quarantined rows to publish with the day's scores (None: quarantine is off)."""
    import pyarrow.parquet as pq

    pipeline = settings.pipeline
    if pipeline.validation.quarantine is None:
        return None
    manifest = read_verdict(lake, pipeline.name, run_date, raw_checksum)
    partition = lake.quarantine_partition(pipeline.name, run_date)
    table = pq.read_table(partition / "part-00000.parquet")
    if table.num_rows != manifest.quarantined_rows:
        raise PartitionError(
            f"quarantine {partition} holds {table.num_rows} rows, its manifest says "
            f"{manifest.quarantined_rows}; rerun the day from validate_raw; nothing was published"
        )
    return table
