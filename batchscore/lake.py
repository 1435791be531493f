"""The data lake: where partitions live, and how they become visible atomically.

Layout (all keyed by the run's logical date, never by wall-clock time):

    raw/<dataset>/dt=YYYY-MM-DD/part-*.parquet + _SUCCESS        landed upstream
    features/<pipeline>/dt=YYYY-MM-DD/                            build_features
    scores/<pipeline>/model_version=N/dt=YYYY-MM-DD/              score
    reports/<kind>/<pipeline>/dt=YYYY-MM-DD/[<stage>/]            validation, drift
    models/<model>/...                                            the registry

A partition written by batchscore is first written under `_staging/`, completed with a
`_SUCCESS` marker, then renamed into place; readers never see half a partition.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from batchscore.errors import PermanentFailure

SUCCESS_MARKER = "_SUCCESS"


class PartitionError(PermanentFailure, RuntimeError):
    """A partition is missing, incomplete or unreadable."""


class Lake:
    """A lake rooted at a local folder (`/path` or `file:///path`)."""

    def __init__(self, url: str):
        self.url = url
        self.root = Path(url.removeprefix("file://"))

    def raw_partition(self, dataset: str, dt: date) -> Path:
        return self.root / "raw" / dataset / f"dt={dt.isoformat()}"

    def features_partition(self, pipeline: str, dt: date) -> Path:
        return self.root / "features" / pipeline / f"dt={dt.isoformat()}"

    def scores_partition(self, pipeline: str, model_version: int, dt: date) -> Path:
        return self.root / "scores" / pipeline / f"model_version={model_version}" / f"dt={dt.isoformat()}"

    def reports_dir(self, kind: str, pipeline: str, dt: date, stage: str | None = None) -> Path:
        path = self.root / "reports" / kind / pipeline / f"dt={dt.isoformat()}"
        return path / stage if stage else path

    def models_dir(self, model: str) -> Path:
        return self.root / "models" / model

    @staticmethod
    def is_complete(partition: Path) -> bool:
        return (partition / SUCCESS_MARKER).is_file()

    def require_complete(self, partition: Path) -> list[Path]:
        """The partition's Parquet files; fails clearly when it is missing, unmarked or empty."""
        if not partition.is_dir():
            raise PartitionError(f"partition {partition} does not exist")
        if not self.is_complete(partition):
            raise PartitionError(f"partition {partition} has no {SUCCESS_MARKER} marker: not complete")
        files = data_files(partition)
        if not files:
            raise PartitionError(f"partition {partition} holds no Parquet files")
        return files

    @contextmanager
    def staged_partition(self, final: Path) -> Iterator[Path]:
        """Yield an empty staging folder; on success it replaces `final` in one rename.

        Earlier failed attempts for the same target are swept first. On error the staging
        folder is removed and `final` is left as it was.
        """
        base = self.root / "_staging" / final.relative_to(self.root)
        shutil.rmtree(base, ignore_errors=True)
        staging = base / uuid.uuid4().hex
        staging.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield staging
            if not staging.is_dir():
                raise PartitionError(f"nothing was written to {staging}")
            (staging / SUCCESS_MARKER).touch()
            replace_dir(staging, final)
        finally:
            shutil.rmtree(base, ignore_errors=True)


def data_files(partition: Path) -> list[Path]:
    return sorted(p for p in partition.glob("*.parquet") if p.is_file())


def replace_dir(source: Path, target: Path) -> None:
    """Move `source` to `target`, replacing an existing `target` with two renames.

    A reader sees the old folder, then briefly none, then the new one: never a mix.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    retired = target.with_name(f".{target.name}.retired-{uuid.uuid4().hex}")
    had_old = target.exists()
    if had_old:
        os.rename(target, retired)
    try:
        os.rename(source, target)
    except BaseException:
        if had_old:
            os.rename(retired, target)
        raise
    if had_old:
        shutil.rmtree(retired, ignore_errors=True)


def partition_checksum(partition: Path) -> str:
    """SHA-256 over the names and bytes of a partition's data files, for lineage."""
    digest = hashlib.sha256()
    for path in data_files(partition):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a small file so that readers see the old content or the new, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
