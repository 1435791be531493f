"""Profile one raw partition with pyarrow: per column its Arrow type, null share, range,
distinct values (strings, bools, integers, up to a limit) and whether its values are unique.

The partition is read the way the raw gate reads it (every Parquet file of the complete
partition, concatenated), so what is inferred from the profile holds on what the gate sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchscore.errors import BadInput
from batchscore.quality.suites import arrow_type_name
from batchscore.storage.lake import Lake, PartitionError, data_files

if TYPE_CHECKING:
    import pyarrow as pa

DISTINCT_LIMIT = 50
"""Up to this many distinct values a column's values are listed (categories, classes)."""


@dataclass(frozen=True)
class ColumnProfile:
    """What one column holds. `kind` is integer, float, bool, string, temporal or other."""

    name: str
    arrow_type: str
    kind: str
    rows: int
    nulls: int
    non_finite: int = 0
    minimum: int | float | None = None
    maximum: int | float | None = None
    distinct_count: int | None = None
    values: tuple[Any, ...] | None = None
    """The sorted distinct non-null values when there are at most `DISTINCT_LIMIT` of them."""

    @property
    def null_share(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def all_null(self) -> bool:
        return self.nulls == self.rows

    @property
    def unique(self) -> bool:
        """Whether no non-null value repeats (known for integers and strings only)."""
        return self.distinct_count is not None and self.distinct_count == self.rows - self.nulls


@dataclass(frozen=True)
class PartitionProfile:
    dataset: str
    dt: date
    partition: Path
    rows: int
    columns: tuple[ColumnProfile, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnProfile | None:
        return next((c for c in self.columns if c.name == name), None)


def partition_dates(lake: Lake, dataset: str) -> list[tuple[date, bool]]:
    """(date, complete) for every `dt=YYYY-MM-DD` partition of a raw dataset, oldest first."""
    return list(lake.raw_days(dataset).items())


def choose_partition(lake: Lake, dataset: str, dt: date | None) -> tuple[date, Path]:
    """The partition to profile: `dt`'s, or the newest complete one; refuses naming the dates there are."""
    dates = partition_dates(lake, dataset)
    complete = [d for d, done in dates if done]
    listed = ", ".join(d.isoformat() + ("" if done else " (incomplete)") for d, done in dates) or "none"
    if dt is None:
        if not complete:
            raise BadInput(
                f"dataset {dataset!r} has no complete partition under {lake.root / 'raw' / dataset} "
                f"(dates there: {listed})"
            )
        newest = lake.raw_partition(dataset, complete[-1])
        lake.available(newest)  # an S3 lake's is staged into the working copy
        return complete[-1], newest
    partition = lake.raw_partition(dataset, dt)
    # an S3 lake's partition is staged into the working copy (the listing came from the bucket)
    if not (lake.available(partition) if lake.store is not None else dt in complete):
        state = "is not complete (no _SUCCESS marker)" if partition.is_dir() else "does not exist"
        raise BadInput(
            f"partition raw/{dataset}/dt={dt.isoformat()} {state}; complete dates: "
            f"{', '.join(d.isoformat() for d in complete) or 'none'} (all dates: {listed})"
        )
    return dt, partition


def read_partition(partition: Path) -> pa.Table:
    """Every Parquet file of the partition as one table; refuses an empty or unreadable one."""
    from batchscore.storage.parquet import read_partition as read_files

    files = data_files(partition)
    if not files:
        raise BadInput(f"partition {partition} holds no Parquet files")
    try:
        return read_files(partition, files)
    except PartitionError as exc:
        cause = exc.__cause__ or exc
        raise BadInput(f"partition {partition} is unreadable: {' '.join(str(cause).split())}") from None


def profile_table(
    table: pa.Table, dataset: str, dt: date, partition: Path, limit: int = DISTINCT_LIMIT
) -> PartitionProfile:
    columns = tuple(profile_column(f.name, table[f.name], limit) for f in table.schema)
    return PartitionProfile(dataset=dataset, dt=dt, partition=partition, rows=table.num_rows, columns=columns)


def column_kind(data_type: pa.DataType) -> str:
    import pyarrow.types as pat

    if pat.is_boolean(data_type):
        return "bool"
    if pat.is_integer(data_type):
        return "integer"
    if pat.is_floating(data_type):
        return "float"
    if pat.is_string(data_type) or pat.is_large_string(data_type):
        return "string"
    if pat.is_temporal(data_type):
        return "temporal"
    return "other"


def profile_column(name: str, column: pa.ChunkedArray, limit: int = DISTINCT_LIMIT) -> ColumnProfile:
    import pyarrow.compute as pc

    kind = column_kind(column.type)
    facts: dict[str, Any] = {}
    valid = column.drop_null()
    if kind in ("integer", "float") and len(valid):
        if kind == "float":
            finite = pc.is_finite(valid)
            facts["non_finite"] = len(valid) - int(pc.sum(finite).as_py() or 0)
            valid = valid.filter(finite)
        if len(valid):
            bounds = pc.min_max(valid).as_py()
            facts["minimum"], facts["maximum"] = _number(bounds["min"]), _number(bounds["max"])
    if kind in ("integer", "string", "bool"):
        facts["distinct_count"] = int(pc.count_distinct(valid).as_py())
        if facts["distinct_count"] <= limit:
            facts["values"] = tuple(sorted(pc.unique(valid).to_pylist()))
    return ColumnProfile(
        name=name,
        arrow_type=arrow_type_name(column.type),
        kind=kind,
        rows=len(column),
        nulls=column.null_count,
        **facts,
    )


def _number(value: Any) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    value = float(value)
    return value if math.isfinite(value) else None
