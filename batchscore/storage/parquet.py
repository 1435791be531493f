"""Reading a partition's Parquet files: the whole day as one table, or its row count from the footers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batchscore.storage.lake import PartitionError, data_files


def read_partition(partition: Path, files: Sequence[Path]) -> pa.Table:
    """`files` of the partition as one Arrow table (one schema, no promotion); a corrupt or
    truncated file raises PartitionError, caused by the reader's error."""
    try:
        return pa.concat_tables([pq.read_table(path) for path in files], promote_options="none")
    except (pa.ArrowInvalid, OSError) as exc:
        raise PartitionError(f"partition {partition} is unreadable: {exc}") from exc


def partition_rows(partition: Path) -> int:
    """Row count from the Parquet footers, without reading the data."""
    return sum(pq.read_metadata(path).num_rows for path in data_files(partition))
