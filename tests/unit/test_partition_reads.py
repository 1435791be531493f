"""Reading a partition's Parquet files: one reader (`batchscore.storage.parquet`) for the
validation gate, drift and the authoring profile, each failing in its own words."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchscore.authoring import profile
from batchscore.errors import BadInput
from batchscore.storage.lake import PartitionError, data_files
from batchscore.storage.parquet import partition_rows, read_partition


def partition(tmp_path: Path, *tables: pa.Table) -> Path:
    folder = tmp_path / "dt=2026-11-21"
    folder.mkdir()
    for number, table in enumerate(tables):
        pq.write_table(table, folder / f"part-{number:05d}.parquet")
    return folder


def test_the_files_read_as_one_table_and_rows_come_from_the_footers(tmp_path):
    folder = partition(tmp_path, pa.table({"k": [1, 2]}), pa.table({"k": [3]}))
    assert read_partition(folder, data_files(folder)).column("k").to_pylist() == [1, 2, 3]
    assert partition_rows(folder) == 3
    assert profile.read_partition(folder).num_rows == 3


def test_a_corrupt_file_fails_clearly_in_each_callers_words(tmp_path):
    folder = partition(tmp_path, pa.table({"k": [1]}))
    (folder / "part-00001.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(PartitionError, match=f"partition {folder} is unreadable: ") as raised:
        read_partition(folder, data_files(folder))
    assert raised.value.__cause__ is not None
    cause = " ".join(str(raised.value.__cause__).split())
    with pytest.raises(BadInput) as bad:
        profile.read_partition(folder)
    assert str(bad.value) == f"partition {folder} is unreadable: {cause}"


def test_mixed_schemas_are_not_promoted(tmp_path):
    folder = partition(tmp_path, pa.table({"k": [1]}), pa.table({"k": ["a"]}))
    with pytest.raises(PartitionError, match="unreadable"):
        read_partition(folder, data_files(folder))
    with pytest.raises(BadInput, match="holds no Parquet files"):
        profile.read_partition(tmp_path)
