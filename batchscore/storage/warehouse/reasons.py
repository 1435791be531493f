"""Reason codes published in the same transaction as their scores' slice.

`score_reasons_<pipeline>` holds, per scored row of a published slice, its top k feature
contributions: (<entity key>, run_date, model_version, rank, feature, value, contribution).
A publish of a slice replaces its reasons in the transaction that replaces its scores, so
readers see the old scores with the old reasons or the new with the new. A publish without
reasons (explain turned off) removes the slice's old ones. The audit below is a pure
function of the reasons, their manifest and the audited scores: it runs before anything is
written, and a failure publishes nothing, scores included.

Each backend stores them its own way (`duckdb/companions.py`, `postgres/reasons.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from batchscore.storage.warehouse.contract import (
    AuditFailed,
    ScoresSlice,
    duplicate_keys,
    raise_on_failures,
    validate_identifier,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from batchscore.storage.manifest import ReasonsManifest

REASON_COLUMNS = ("rank", "feature", "value", "contribution")


@dataclass(frozen=True)
class ReasonsSlice:
    """The reasons that go with one scores slice: the table, and the lake partition (None: none now)."""

    table: str
    path: Path | None

    def __post_init__(self) -> None:
        validate_identifier(self.table, "reasons table name")


def read_reasons(path: Path, entity_key: str) -> tuple[pa.Table, ReasonsManifest]:
    """The reasons partition's rows and its manifest; unreadable reasons fail the audit."""
    import pyarrow.parquet as pq

    from batchscore.storage.manifest import ReasonsManifest, read_manifest

    files = sorted(path.glob("*.parquet"))
    try:
        manifest = read_manifest(path, ReasonsManifest, "reasons partition")
        table = pq.ParquetDataset([str(f) for f in files], partitioning=None).read(
            columns=[entity_key, *REASON_COLUMNS, "model_version", "run_date"]
        )
    except (KeyError, ValueError, OSError, RuntimeError) as exc:
        raise AuditFailed(f"unreadable reasons in {path}: {exc}; nothing was published") from exc
    return table, manifest


def audit_reasons(
    reasons: pa.Table, manifest: ReasonsManifest, scores: pa.Table, target: ScoresSlice, scores_checksum: str
) -> list[str]:
    """Each failed check as one message: the reasons must explain exactly these scores, k per row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    failures = []
    if manifest.scores_checksum != scores_checksum:
        failures.append("the reasons were computed with other scores than these (checksums differ)")
    if manifest.model_version != target.model_version:
        failures.append(f"reasons of model v{manifest.model_version}, not v{target.model_version}")
    k, rows = manifest.top_k, scores.num_rows
    if reasons.num_rows != k * rows:
        failures.append(f"{reasons.num_rows} reasons for {rows} scored rows, expected {k} per row")
    for name in (target.entity_key, "rank", "feature", "contribution"):
        if reasons.column(name).null_count:
            failures.append(f"{reasons.column(name).null_count} null {name}s in the reasons")
    contribution = reasons.column("contribution").to_numpy().astype(np.float64, copy=False)
    if not np.isfinite(contribution).all():
        failures.append(f"{int(np.count_nonzero(~np.isfinite(contribution)))} contributions NaN or infinite")
    other = reasons.num_rows - int(
        pc.sum(pc.equal(reasons.column("model_version"), target.model_version)).as_py() or 0
    )
    dates = reasons.column("run_date").cast(pa.date32())
    other += reasons.num_rows - int(
        pc.sum(pc.equal(dates, pa.scalar(target.run_date, pa.date32()))).as_py() or 0
    )
    if other:
        failures.append(f"{other} reasons for another model version or run date")
    if not failures:
        failures += _ranks_cover_every_key(reasons, scores, target.entity_key, k)
    return failures


def _ranks_cover_every_key(reasons: pa.Table, scores: pa.Table, entity_key: str, k: int) -> list[str]:
    """Ranks 1..k, each holding every scored key exactly once."""
    import pyarrow.compute as pc

    ranks = reasons.column("rank")
    if len(ranks) and (pc.min(ranks).as_py() < 1 or pc.max(ranks).as_py() > k):
        return [f"ranks outside 1..{k}"]
    keys = scores.column(entity_key)
    for rank in range(1, k + 1):
        ranked = reasons.filter(pc.equal(ranks, rank)).column(entity_key)
        if len(ranked) != len(keys) or duplicate_keys(ranked):
            return [f"rank {rank} does not hold each scored key once"]
        if not pc.all(pc.is_in(ranked, value_set=keys.combine_chunks())).as_py():
            return [f"rank {rank} names keys that were not scored"]
    return []


def audited_reasons(
    reasons: ReasonsSlice | None, scores: pa.Table, target: ScoresSlice, scores_path: Path
) -> pa.Table | None:
    """The audited reasons to publish with the scores (None: none); raises AuditFailed."""
    from batchscore.storage.lake import partition_checksum

    if reasons is None or reasons.path is None:
        return None
    table, manifest = read_reasons(reasons.path, target.entity_key)
    failures = audit_reasons(table, manifest, scores, target, partition_checksum(scores_path))
    raise_on_failures([f"reasons: {f}" for f in failures], target)
    return table.select([target.entity_key, *REASON_COLUMNS])
