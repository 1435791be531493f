"""Partitions become visible whole or not at all; a failed attempt leaves the old one intact."""

from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchscore.storage.lake import Lake, PartitionError, partition_checksum

DAY = date(2026, 11, 21)


def write(lake: Lake, rows: int) -> None:
    final = lake.features_partition("churn", DAY)
    with lake.staged_partition(final) as staging:
        staging.mkdir(parents=True)
        pq.write_table(pa.table({"x": list(range(rows))}), staging / "part-0.parquet")


def test_commit_makes_partition_complete_and_replaces_old(tmp_path):
    lake = Lake(str(tmp_path))
    write(lake, 3)
    final = lake.features_partition("churn", DAY)
    assert lake.is_complete(final)
    write(lake, 5)
    assert pq.read_table(final).num_rows == 5
    assert not list((tmp_path / "_staging").rglob("*.parquet")), "no staging leftovers"
    assert [p.name for p in final.parent.iterdir()] == [final.name], "no retired copies left"


def test_failed_attempt_leaves_previous_partition(tmp_path):
    lake = Lake(str(tmp_path))
    write(lake, 3)
    final = lake.features_partition("churn", DAY)
    with pytest.raises(RuntimeError, match="boom"), lake.staged_partition(final) as staging:
        staging.mkdir(parents=True)
        pq.write_table(pa.table({"x": [1]}), staging / "part-0.parquet")
        raise RuntimeError("boom")
    assert pq.read_table(final).num_rows == 3
    assert not list((tmp_path / "_staging").rglob("*.parquet"))


def test_require_complete_explains_what_is_wrong(tmp_path):
    lake = Lake(f"file://{tmp_path}")
    part = lake.raw_partition("customers", DAY)
    with pytest.raises(PartitionError, match="does not exist"):
        lake.require_complete(part)
    part.mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), part / "part-0.parquet")
    with pytest.raises(PartitionError, match="no _SUCCESS marker"):
        lake.require_complete(part)
    (part / "part-0.parquet").unlink()
    (part / "_SUCCESS").touch()
    with pytest.raises(PartitionError, match="holds no Parquet files"):
        lake.require_complete(part)


def test_checksum_changes_with_content(tmp_path):
    lake = Lake(str(tmp_path))
    write(lake, 3)
    first = partition_checksum(lake.features_partition("churn", DAY))
    write(lake, 3)
    assert partition_checksum(lake.features_partition("churn", DAY)) == first
    write(lake, 4)
    assert partition_checksum(lake.features_partition("churn", DAY)) != first


def test_raw_partitions_are_listed_by_day_through_the_lake(tmp_path):
    lake = Lake(str(tmp_path))
    assert lake.raw_days("customers") == {} and lake.landed_raw("customers") == []
    for day in (date(2026, 11, 22), date(2026, 11, 20)):
        part = lake.raw_partition("customers", day)
        part.mkdir(parents=True)
        (part / "_SUCCESS").touch()
    lake.raw_partition("customers", DAY).mkdir(parents=True)  # landing: no marker yet
    (lake.root / "raw" / "customers" / "dt=latest").mkdir()  # not a day
    (lake.root / "raw" / "customers" / "dt=2026-11-23").touch()  # a file, not a partition

    assert list(lake.raw_days("customers").items()) == [
        (date(2026, 11, 20), True),
        (DAY, False),
        (date(2026, 11, 22), True),
    ]
    assert lake.landed_raw("customers") == [
        lake.raw_partition("customers", date(2026, 11, 20)),
        lake.raw_partition("customers", date(2026, 11, 22)),
    ]
    assert lake.raw_days("churn_labels") == {}
