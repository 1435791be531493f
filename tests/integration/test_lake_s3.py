"""The S3 lake against moto's server on loopback: staging in with checksums, committing out with
the marker last, atomic replacement, and the model registry mirrored to the bucket."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchscore.settings import load_platform
from batchscore.storage.lake import SUCCESS_MARKER, ChecksumMismatch, Lake, PartitionError
from batchscore.storage.object_store import S3Store
from tests.s3_server import create_bucket, moto_endpoint, s3_client

pytestmark = pytest.mark.integration

PORT = 18080
DAY = date(2026, 11, 21)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory) -> Iterator[str]:
    with moto_endpoint(PORT, tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture
def lake(endpoint, tmp_path) -> Lake:
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    create_bucket(endpoint, bucket)
    platform = load_platform(
        {
            "BATCHSCORE_HOME": str(tmp_path),
            "BATCHSCORE_LAKE_URL": f"s3://{bucket}/prod",
            "BATCHSCORE_S3_ENDPOINT_URL": endpoint,
            "BATCHSCORE_LAKE_CACHE_DIR": str(tmp_path / "working-copy"),
        }
    )
    return Lake(platform.lake_url, platform)


def keys(lake: Lake) -> list[str]:
    assert lake.store is not None
    return sorted(lake.store.list("", recursive=True))


def write_table(lake: Lake, final: Path, values: list[int]) -> None:
    with lake.staged_partition(final) as staging:
        staging.mkdir(parents=True)
        pq.write_table(pa.table({"x": values}), staging / "part-0.parquet")


class RecordingStore(S3Store):
    """The real S3 store, remembering the order of its writes."""

    writes: list[str]

    def upload(self, path: Path, relative: str) -> None:
        self.writes.append(relative)
        super().upload(path, relative)

    def put_bytes(self, relative: str, data: bytes) -> None:
        self.writes.append(relative)
        super().put_bytes(relative, data)


def test_a_committed_partition_lands_data_first_and_marker_last_with_its_manifest(lake):
    store = RecordingStore(lake.store.bucket, lake.store.prefix, lake.store._endpoint_url)
    store.writes = []
    lake.store = store
    final = lake.raw_partition("customers", DAY)
    write_table(lake, final, [1, 2, 3])

    assert store.writes == [
        "raw/customers/dt=2026-11-21/part-0.parquet",
        "raw/customers/dt=2026-11-21/_SUCCESS",
    ]
    manifest = json.loads(store.get_bytes("raw/customers/dt=2026-11-21/_SUCCESS"))
    local = final / "part-0.parquet"
    assert manifest["files"]["part-0.parquet"]["bytes"] == local.stat().st_size
    assert lake.landed(final)
    assert not lake.landed(lake.raw_partition("customers", date(2026, 11, 22)))


def test_a_fresh_working_copy_stages_in_and_verifies_checksums(lake, tmp_path):
    final = lake.raw_partition("customers", DAY)
    write_table(lake, final, list(range(100)))
    other = Lake(lake.url, load_platform(_env(lake, tmp_path / "other-copy")))
    staged = other.raw_partition("customers", DAY)
    assert not staged.exists()

    files = other.require_complete(staged)

    assert [f.name for f in files] == ["part-0.parquet"]
    assert pq.read_table(files[0]).column("x").to_pylist() == list(range(100))

    # Someone overwrites a data file in the bucket without a new manifest: refused, and retried.
    s3_client(lake.store.client.meta.endpoint_url).put_object(
        Bucket=lake.store.bucket,
        Key=lake.store.key("raw/customers/dt=2026-11-21/part-0.parquet"),
        Body=b"torn",
    )
    third = Lake(lake.url, load_platform(_env(lake, tmp_path / "third-copy")))
    with pytest.raises(ChecksumMismatch, match="do not match its manifest"):
        third.require_complete(third.raw_partition("customers", DAY))
    assert not third.raw_partition("customers", DAY).exists(), "nothing half-staged is left visible"


def test_an_incomplete_remote_partition_is_refused(lake):
    lake.store.put_bytes("raw/customers/dt=2026-11-21/part-0.parquet", b"data")
    partition = lake.raw_partition("customers", DAY)
    assert not lake.landed(partition) and not lake.available(partition)
    with pytest.raises(PartitionError, match=r"s3://.*/prod/raw/customers/dt=2026-11-21 has no _SUCCESS"):
        lake.require_complete(partition)
    with pytest.raises(PartitionError, match="does not exist"):
        lake.require_complete(lake.raw_partition("customers", date(2026, 1, 1)))


def test_an_upstream_partition_with_an_empty_marker_is_checked_by_etag(lake, tmp_path):
    data = pa.BufferOutputStream()
    pq.write_table(pa.table({"x": [7, 8]}), data)
    lake.store.put_bytes("raw/customers/dt=2026-11-21/part-0.parquet", data.getvalue().to_pybytes())
    lake.store.put_bytes(f"raw/customers/dt=2026-11-21/{SUCCESS_MARKER}", b"")
    files = lake.require_complete(lake.raw_partition("customers", DAY))
    assert pq.read_table(files[0]).column("x").to_pylist() == [7, 8]


def test_a_rerun_replaces_the_remote_partition_without_stale_files(lake):
    final = lake.features_partition("churn", DAY)
    with lake.staged_partition(final) as staging:
        staging.mkdir(parents=True)
        for i in range(3):
            pq.write_table(pa.table({"x": [i]}), staging / f"part-{i}.parquet")
    write_table(lake, final, [42])

    assert keys(lake) == [
        "features/churn/dt=2026-11-21/_SUCCESS",
        "features/churn/dt=2026-11-21/part-0.parquet",
    ]
    manifest = json.loads(lake.store.get_bytes("features/churn/dt=2026-11-21/_SUCCESS"))
    assert list(manifest["files"]) == ["part-0.parquet"]


def test_the_model_registry_is_mirrored_and_read_back_from_the_bucket(lake, tmp_path):
    from batchscore.models.registry import ModelRegistry

    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "model.ubj").write_bytes(b"model-bytes")
    registry = ModelRegistry(lake, "churn_xgb")
    version = registry.register(artifacts, {"feature_set": {"hash": "abc", "features": ["a"]}})
    registry.move_alias("champion", version.version, reason="first")

    assert "models/churn_xgb/aliases.json" in keys(lake)
    assert not any(".lock" in k or ".staging" in k for k in keys(lake))
    elsewhere = Lake(lake.url, load_platform(_env(lake, tmp_path / "elsewhere")))
    resolved = ModelRegistry(elsewhere, "churn_xgb").resolve("champion")
    assert resolved.version == 1
    assert resolved.artifact("model.ubj").read_bytes() == b"model-bytes"


def _env(lake: Lake, cache: Path) -> dict[str, str]:
    return {
        "BATCHSCORE_HOME": str(cache.parent),
        "BATCHSCORE_LAKE_URL": lake.url,
        "BATCHSCORE_S3_ENDPOINT_URL": str(lake.store.client.meta.endpoint_url),
        "BATCHSCORE_LAKE_CACHE_DIR": str(cache),
    }


def test_a_stage_manifest_travels_with_its_partition_and_is_reused_from_the_bucket(lake, tmp_path):
    """The fingerprinted manifest is committed with the data: another machine (an empty working
    copy) finds the partition reusable; a changed fingerprint is not."""
    import shutil
    import time

    from batchscore.storage.reuse import MANIFEST, record_stage, reusable

    final = lake.features_partition("churn", DAY)
    with lake.staged_partition(final) as staging:
        staging.mkdir(parents=True)
        pq.write_table(pa.table({"x": [1, 2, 3]}), staging / "part-0.parquet")
        record_stage(staging, "fp-1", {"stage": "build_features", "rows": 3, "seconds": 4.2})
    assert f"features/churn/dt={DAY}/{MANIFEST}" in keys(lake)

    shutil.rmtree(lake.root)  # a fresh machine: nothing in the working copy
    reused = reusable(lake, [final], "fp-1", time.perf_counter())
    assert reused is not None and reused["reused"] is True and (reused["rows"], reused["seconds"]) == (3, 4.2)
    assert reusable(lake, [final], "fp-2", time.perf_counter()) is None
    assert reusable(lake, [lake.features_partition("churn", date(2026, 11, 22))], "fp-1", 0.0) is None


def test_raw_days_come_from_the_bucket_not_the_working_copy(lake):
    """A partition another writer landed counts before it is staged in; listing stages nothing."""
    assert lake.store is not None
    client = s3_client(lake.store.client.meta.endpoint_url)
    landed = {
        "raw/churn_labels/dt=2026-11-20/part-0.parquet": b"x",
        "raw/churn_labels/dt=2026-11-20/_SUCCESS": b"",
        "raw/churn_labels/dt=2026-11-21/part-0.parquet": b"x",  # still landing
        "raw/churn_labels/dt=2026-11-22/_SUCCESS": b"",
        "raw/churn_labels/dt=latest/_SUCCESS": b"",  # not a day
        "raw/churn_labels_v2/dt=2026-11-19/_SUCCESS": b"",  # another dataset
    }
    for key, body in landed.items():
        client.put_object(Bucket=lake.store.bucket, Key=lake.store.key(key), Body=body)

    assert not (lake.root / "raw").exists(), "nothing is staged in by listing"
    assert list(lake.raw_days("churn_labels").items()) == [
        (date(2026, 11, 20), True),
        (date(2026, 11, 21), False),
        (date(2026, 11, 22), True),
    ]
    assert lake.landed_raw("churn_labels") == [
        lake.raw_partition("churn_labels", date(2026, 11, 20)),
        lake.raw_partition("churn_labels", date(2026, 11, 22)),
    ]
    assert lake.raw_days("customers") == {}
