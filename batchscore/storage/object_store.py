"""S3 access for an `s3://bucket/prefix` lake, through boto3 (any S3 API: AWS, MinIO, moto's server).

Credentials come from boto3's own chain (environment, profile, instance role) or, when
`BATCHSCORE_S3_CONN_ID` names one, from an Airflow connection (login = access key id,
password = secret key, extra `endpoint_url` / `region_name`); never from a DAG file.
"""

from __future__ import annotations

import builtins
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Single-part uploads up to this size keep the ETag equal to the object's MD5.
MULTIPART_THRESHOLD = 512 * 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str

    @property
    def md5(self) -> str | None:
        """The object's MD5 when its ETag is one (single-part, unencrypted uploads)."""
        return None if "-" in self.etag else self.etag


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def client_kwargs(endpoint_url: str | None, conn_id: str | None) -> dict[str, Any]:
    """boto3 client arguments: the endpoint, plus credentials from an Airflow connection if named."""
    kwargs: dict[str, Any] = {"endpoint_url": endpoint_url}
    if conn_id:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        extra = conn.extra_dejson
        kwargs.update(
            aws_access_key_id=conn.login or None,
            aws_secret_access_key=conn.password or None,
            endpoint_url=endpoint_url or extra.get("endpoint_url"),
            region_name=extra.get("region_name"),
        )
    kwargs.setdefault("region_name", None)
    kwargs["region_name"] = kwargs["region_name"] or "us-east-1"
    return kwargs


class S3Store:
    """Objects under one bucket and key prefix; keys are given relative to the prefix."""

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None = None, conn_id: str | None = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._endpoint_url = endpoint_url
        self._conn_id = conn_id
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", **client_kwargs(self._endpoint_url, self._conn_id))
        return self._client

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def url(self, relative: str) -> str:
        return f"s3://{self.bucket}/{self.key(relative)}"

    def list(self, relative_dir: str, recursive: bool = False) -> dict[str, ObjectInfo]:
        """Objects under a folder, keyed by their path relative to it."""
        base = self.key(relative_dir).rstrip("/") + "/"
        found: dict[str, ObjectInfo] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        options: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base}
        if not recursive:
            options["Delimiter"] = "/"
        for page in paginator.paginate(**options):
            for obj in page.get("Contents", []):
                found[obj["Key"][len(base) :]] = ObjectInfo(int(obj["Size"]), obj["ETag"].strip('"'))
        return found

    def exists(self, relative: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(relative))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def get_bytes(self, relative: str) -> bytes:
        response = self.client.get_object(Bucket=self.bucket, Key=self.key(relative))
        return bytes(response["Body"].read())

    def put_bytes(self, relative: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(relative), Body=data)

    def upload(self, path: Path, relative: str) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD)
        self.client.upload_file(str(path), self.bucket, self.key(relative), Config=config)

    def download(self, relative: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(self.bucket, self.key(relative), str(path))

    def delete(self, relatives: builtins.list[str]) -> None:
        for start in range(0, len(relatives), 1000):
            chunk = relatives[start : start + 1000]
            if chunk:
                self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self.key(r)} for r in chunk], "Quiet": True},
                )
