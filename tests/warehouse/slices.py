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
