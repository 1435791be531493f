"""Raw partitions of an S3 lake are listed in the bucket (moto's server on loopback), not in
the working copy: a partition another writer landed counts before it is staged in."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date

import pytest

from batchscore.settings import load_platform
from batchscore.storage.lake import Lake
from tests.s3_server import create_bucket, moto_endpoint, s3_client

pytestmark = pytest.mark.integration

PORT = 18083


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory) -> Iterator[str]:
    with moto_endpoint(PORT, tmp_path_factory.mktemp("moto")) as url:
        yield url


def test_raw_days_come_from_the_bucket(endpoint, tmp_path):
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
    lake = Lake(platform.lake_url, platform)
    client = s3_client(endpoint)
    landed = {
        "prod/raw/churn_labels/dt=2026-11-20/part-0.parquet": b"x",
        "prod/raw/churn_labels/dt=2026-11-20/_SUCCESS": b"",
        "prod/raw/churn_labels/dt=2026-11-21/part-0.parquet": b"x",  # still landing
        "prod/raw/churn_labels/dt=2026-11-22/_SUCCESS": b"",
        "prod/raw/churn_labels/dt=latest/_SUCCESS": b"",  # not a day
        "prod/raw/churn_labels_v2/dt=2026-11-19/_SUCCESS": b"",  # another dataset
    }
    for key, body in landed.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)

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
