"""Reading a partition's Parquet files: what their footers say (schema, rows, bytes), the whole day
as one table, or its row count from the footers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batchscore.storage.lake import Lake, PartitionError, data_files


@dataclass(frozen=True)
class Footprint:
    """What the Parquet footers say about a partition, read before any data."""

    files: list[Path]
    schema: pa.Schema
    rows: int
    bytes: int
    mixed_schemas: list[str]


def read_footprint(lake: Lake, partition: Path) -> Footprint:
    """Schema, rows and uncompressed bytes from each file's footer; corrupt files fail here."""
    files = lake.require_complete(partition)
    schemas: dict[str, pa.Schema] = {}
    rows = size = 0
    for path in files:
        try:
            meta = pq.read_metadata(path)
            schema = pq.read_schema(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise PartitionError(f"partition {partition} is unreadable: {path.name}: {exc}") from exc
        rows += meta.num_rows
        size += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        schemas[path.name] = schema.remove_metadata()
    first = next(iter(schemas.values()))
    mixed = [
        f"file {name} has a different schema than {files[0].name}"
        for name, schema in schemas.items()
        if not schema.equals(first)
    ]
    return Footprint(files=files, schema=first, rows=rows, bytes=size, mixed_schemas=mixed)


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
