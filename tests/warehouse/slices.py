"""Scores partitions and slices for warehouse tests (no pytest import: the publisher subprocess uses them)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batchscore.storage.warehouse import ScoresSlice

DAY = date(2026, 11, 21)


def scores_file(folder: Path, keys, scores, version=1, run_date=DAY) -> Path:  # type: ignore[no-untyped-def]
    """A scores partition as `jobs.score` writes it (entity key, score, model_version, run_date)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(keys)
    pq.write_table(
        pa.table(
            {
                "customer_id": pa.array(keys, pa.int64()),
                "score": pa.array(scores, pa.float64()),
                "model_version": pa.array([version] * n, pa.int64()),
                "run_date": pa.array([run_date] * n, pa.date32()),
            }
        ),
        folder / "part-0.parquet",
    )
    return folder


def target(run_id: str = "run-1", version: int = 1, day: date = DAY) -> ScoresSlice:
    return ScoresSlice("churn", "scores_churn", "customer_id", day, "churn_xgb", version, run_id)


def reasons_file(  # type: ignore[no-untyped-def]
    folder: Path, scores: Path, keys, k: int = 3, shift: float = 0.0, version=1, run_date=DAY
) -> Path:
    """A reasons partition as `jobs.score` writes it: k rows per key, tied to `scores` by checksum."""
    import json

    from batchscore.storage.lake import REASONS_MANIFEST, partition_checksum

    folder.mkdir(parents=True, exist_ok=True)
    rows = [(key, rank) for key in keys for rank in range(1, k + 1)]
    pq.write_table(
        pa.table(
            {
                "customer_id": pa.array([key for key, _ in rows], pa.int64()),
                "rank": pa.array([rank for _, rank in rows], pa.int16()),
                "feature": pa.array([f"f{rank}" for _, rank in rows], pa.string()),
                "value": pa.array([float(key) for key, _ in rows], pa.float64()),
                "contribution": pa.array([1.0 / rank + shift for _, rank in rows], pa.float64()),
                "model_version": pa.array([version] * len(rows), pa.int64()),
                "run_date": pa.array([run_date] * len(rows), pa.date32()),
            }
        ),
        folder / "part-00000.parquet",
    )
    manifest = {"model_version": version, "top_k": k, "scores_checksum": partition_checksum(scores)}
    (folder / REASONS_MANIFEST).write_text(json.dumps(manifest))
    (folder / "_SUCCESS").touch()
    return folder


def held_rows(lake, raw_checksum: str, rows=(), day=DAY) -> None:  # type: ignore[no-untyped-def]
    """The quarantine verdict validate_raw leaves for the day: `rows` (key, rule, row_json) held aside."""
    from batchscore.quality.quarantine_gate import write_held
    from batchscore.storage.manifest import QuarantineManifest

    keys, rules, bodies = (list(column) for column in zip(*rows, strict=True)) if rows else ([], [], [])
    table = pa.table(
        {
            "customer_id": pa.array(keys, pa.string()),
            "rule": pa.array(rules, pa.string()),
            "row_json": pa.array(bodies, pa.string()),
        }
    )
    manifest = QuarantineManifest(raw_checksum=raw_checksum, quarantined_rows=len(keys), clean_checksum=None)
    write_held(lake, "churn", day, table, manifest)


def quarantined(n: int, run_id: str = "") -> pa.Table:
    """`n` held-aside rows as `batchscore.quality.quarantine_gate` writes them (keys "q0".. tagged with `run_id`)."""
    return pa.table(
        {
            "customer_id": pa.array([f"q{i}" for i in range(n)], pa.string()),
            "rule": pa.array(["finite(monthly_charges)"] * n, pa.string()),
            "row_json": pa.array([f'{{"run": "{run_id}", "i": {i}}}' for i in range(n)], pa.string()),
        }
    )
