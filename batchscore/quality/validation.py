"""Validation gates: the data contract first, then the Great Expectations suite, then reports.

A gate compares the partition's schema with its suite's contract and only then runs the
suite's statistics (`gx_engine`). Expectations with `"severity": "warning"` are reported but
do not fail the gate. Every run writes `result.json` and a self-contained `report.html`
(`report`); a failing gate raises `ValidationFailed` naming every failed check.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchscore.quality.gx_engine import column_batches, gx_results, usable_cpus
from batchscore.quality.outcome import (
    ValidationFailed,
    ValidationOutcome,
    failed_expectation,
    jsonable,
    result_row,
)
from batchscore.quality.report import render_html
from batchscore.quality.suites import (
    FLOAT_TYPES,
    Suite,
    arrow_nan_counts,
    arrow_type_name,
    contract_violations,
    nan_violations,
)
from batchscore.storage.lake import write_bytes_atomic

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame as SparkFrame


@dataclass(frozen=True)
class GateIdentity:
    """Which gate ran: the pipeline, the dataset, the stage and the partition it checked."""

    pipeline: str
    dataset: str
    stage: str
    partition: str


PARALLEL_MIN_ROWS = 200_000
"""Below this many rows a gate validates in-process: forking workers costs more than it saves."""


def validate_table(
    table: pa.Table,
    suite: Suite,
    *,
    pipeline: str,
    dataset: str,
    stage: str,
    partition: str,
    report_dir: str | Path,
    raise_on_failure: bool = True,
    workers: int | None = None,
    quarantine: dict[str, Any] | None = None,
) -> ValidationOutcome:
    """Gate an in-memory partition: contract first, then the suite on GX's pandas engine.

    Partitions of `PARALLEL_MIN_ROWS` or more are validated by `workers` forked processes
    (default: the CPUs this process may use). `quarantine` (the rows held aside before this
    gate, and why) goes into both reports.
    """
    started = time.perf_counter()
    contract = contract_violations(suite.schema, table.schema)
    if not contract:
        contract = nan_violations(arrow_nan_counts(table))
    return _gate(
        suite,
        contract,
        lambda: gx_results(
            suite,
            "pandas",
            column_batches(suite, table),
            workers=(workers or usable_cpus()) if table.num_rows >= PARALLEL_MIN_ROWS else 1,
        ),
        engine="pandas",
        rows=table.num_rows,
        started=started,
        identity=GateIdentity(pipeline, dataset, stage, partition),
        report_dir=Path(report_dir),
        raise_on_failure=raise_on_failure,
        quarantine=quarantine,
    )


def validate_spark(
    frame: SparkFrame,
    schema: pa.Schema,
    rows: int,
    suite: Suite,
    *,
    pipeline: str,
    dataset: str,
    stage: str,
    partition: str,
    report_dir: str | Path,
    raise_on_failure: bool = True,
    quarantine: dict[str, Any] | None = None,
) -> ValidationOutcome:
    """Gate a partition too large for memory: the same contract and suite on GX's Spark engine.

    `schema` is the partition's Arrow schema (from the Parquet footers), so both engines check
    the contract on the same types.
    """
    from pyspark.sql import functions as F

    started = time.perf_counter()
    contract = contract_violations(suite.schema, schema)
    if not contract:
        floats = [f.name for f in schema if arrow_type_name(f.type) in FLOAT_TYPES]
        counts = (
            frame.agg(*[F.sum(F.isnan(F.col(c)).cast("long")).alias(c) for c in floats]).first()
            if floats
            else None
        )
        contract = nan_violations({c: int(counts[c] or 0) for c in floats} if counts else {})

    def run_suite() -> tuple[list[Any], int]:
        # Our own cache, dropped afterwards: Spark matches cached data by plan, so a persisted
        # read of this path would answer the next read of it (a rerun after a fix) with old rows.
        frame.persist()
        try:
            return gx_results(suite, "spark", [(frame, list(range(len(suite.expectations))))])
        finally:
            frame.unpersist()

    return _gate(
        suite,
        contract,
        run_suite,
        engine="spark",
        rows=rows,
        started=started,
        identity=GateIdentity(pipeline, dataset, stage, partition),
        report_dir=Path(report_dir),
        raise_on_failure=raise_on_failure,
        quarantine=quarantine,
    )


def _gate(
    suite: Suite,
    contract: list[str],
    run_suite: Callable[[], tuple[list[Any], int]],
    *,
    engine: str,
    rows: int,
    started: float,
    identity: GateIdentity,
    report_dir: Path,
    raise_on_failure: bool,
    quarantine: dict[str, Any] | None = None,
) -> ValidationOutcome:
    """Run the suite unless the contract already failed, write both reports, raise on failure."""
    results, workers = ([], 0) if contract else run_suite()
    failed = [failed_expectation(r, suite.pii) for r in results if not r.success]
    blocking = bool(contract) or any(f.severity != "warning" for f in failed)
    outcome = ValidationOutcome(
        pipeline=identity.pipeline,
        dataset=identity.dataset,
        stage=identity.stage,
        partition=identity.partition,
        success=not blocking,
        evaluated=len(results),
        passed=sum(1 for r in results if r.success),
        failed=failed,
        contract=contract,
        suite=str(suite.path),
        engine=engine,
        rows=rows,
        json_path=str(report_dir / "result.json"),
        html_path=str(report_dir / "report.html"),
        seconds=time.perf_counter() - started,
        workers=workers,
    )
    document = {
        "outcome": asdict(outcome),
        "contract": {"declared": suite.schema, "violations": contract},
        "expectations": [result_row(r, suite.pii) for r in results],
        "quarantine": quarantine,
    }
    document = jsonable(document)
    write_bytes_atomic(Path(outcome.json_path), json.dumps(document, indent=2).encode())
    write_bytes_atomic(Path(outcome.html_path), render_html(document).encode())
    if blocking and raise_on_failure:
        raise ValidationFailed(outcome)
    return outcome
