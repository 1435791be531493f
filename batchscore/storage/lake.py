"""The data lake: where partitions live, and how they become visible atomically.

Layout (all keyed by the run's logical date, never by wall-clock time):

    raw/<dataset>/dt=YYYY-MM-DD/part-*.parquet + _SUCCESS        landed upstream
    features/<pipeline>/dt=YYYY-MM-DD/                            build_features
    scores/<pipeline>/model_version=N/dt=YYYY-MM-DD/              score
    reasons/<pipeline>/model_version=N/dt=YYYY-MM-DD/             score (`explain:`), + _reasons.json
    reports/<kind>/<pipeline>/dt=YYYY-MM-DD/[<stage>/]            validation, drift, health
    models/<model>/...                                            the registry

A partition written by batchscore is first written under `_staging/`, completed with a
`_SUCCESS` marker, then renamed into place; readers never see half a partition.

An `s3://bucket/prefix` lake keeps the same layout under the prefix and a local working copy
(Spark here has no s3a): a partition is staged in with boto3 before it is read (checksums
verified), and a committed partition is uploaded data files first, `_SUCCESS` last, carrying a
manifest of the files' sizes and SHA-256; S3 readers that wait for `_SUCCESS` never see half a
partition. The model registry and reports are mirrored the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchscore.errors import PermanentFailure

if TYPE_CHECKING:
    from batchscore.settings import PlatformSettings
    from batchscore.storage.object_store import S3Store

SUCCESS_MARKER = "_SUCCESS"
REASONS_MANIFEST = "_reasons.json"
"""In a reasons partition: top_k, method, the checksum of the scores partition the reasons
were computed with, and the day's mean |contribution| per feature (attribution drift)."""


class PartitionError(PermanentFailure, RuntimeError):
    """A partition is missing, incomplete or unreadable."""


class ChecksumMismatch(RuntimeError):
    """A staged copy differs from what the lake's manifest says (retried: it may be a torn transfer)."""


class Lake:
    """A lake rooted at a local folder (`/path`, `file:///path`) or in S3 (`s3://bucket/prefix`).

    For S3, `root` is the local working copy and `store` the bucket; `platform` supplies the
    endpoint, credentials and working-copy folder (read from the environment when omitted).
    """

    def __init__(self, url: str, platform: PlatformSettings | None = None):
        self.url = url
        self.store: S3Store | None = None
        if url.startswith("s3://"):
            from batchscore.settings import load_platform
            from batchscore.storage.object_store import S3Store

            platform = platform or load_platform()
            bucket, _, prefix = url.removeprefix("s3://").partition("/")
            self.store = S3Store(bucket, prefix, platform.s3_endpoint_url, platform.s3_conn_id)
            self.root = platform.lake_working_copy / bucket / prefix.strip("/")
        else:
            self.root = Path(url.removeprefix("file://"))

    def raw_partition(self, dataset: str, dt: date) -> Path:
        return self.root / "raw" / dataset / f"dt={dt.isoformat()}"

    def features_partition(self, pipeline: str, dt: date) -> Path:
        return self.root / "features" / pipeline / f"dt={dt.isoformat()}"

    def scores_partition(self, pipeline: str, model_version: int, dt: date) -> Path:
        return self.root / "scores" / pipeline / f"model_version={model_version}" / f"dt={dt.isoformat()}"

    def reasons_partition(self, pipeline: str, model_version: int, dt: date) -> Path:
        return self.root / "reasons" / pipeline / f"model_version={model_version}" / f"dt={dt.isoformat()}"

    def quarantine_partition(self, pipeline: str, dt: date) -> Path:
        """The raw rows the day's gate held aside, with `_QUARANTINE.json` (counts, checksums)."""
        return self.root / "quarantine" / pipeline / f"dt={dt.isoformat()}"

    def clean_partition(self, pipeline: str, dt: date) -> Path:
        """The day's raw rows less the quarantined ones (only written when rows were held aside)."""
        return self.root / "clean" / pipeline / f"dt={dt.isoformat()}"

    def reports_dir(self, kind: str, pipeline: str, dt: date, stage: str | None = None) -> Path:
        path = self.root / "reports" / kind / pipeline / f"dt={dt.isoformat()}"
        return path / stage if stage else path

    def models_dir(self, model: str) -> Path:
        return self.root / "models" / model

    def raw_days(self, dataset: str) -> dict[date, bool]:
        """Each day a raw dataset has a `dt=YYYY-MM-DD` partition for, oldest first, and whether
        that partition is complete (carries `_SUCCESS`). An S3 lake is listed in the bucket, so
        partitions landed by other writers count before they are staged into the working copy."""
        if self.store is not None:
            return self._remote_days(f"raw/{dataset}")
        base = self.root / "raw" / dataset
        days: dict[date, bool] = {}
        for folder in sorted(base.glob("dt=*")) if base.is_dir() else []:
            day = _partition_day(folder.name)
            if day is not None and folder.is_dir():
                days[day] = self.is_complete(folder)
        return days

    def landed_raw(self, dataset: str) -> list[Path]:
        """The complete partitions of a raw dataset, oldest first, as working-copy paths (for
        an S3 lake `available` or `require_complete` stages one in before it is read)."""
        return [self.raw_partition(dataset, day) for day, done in self.raw_days(dataset).items() if done]

    def _remote_days(self, relative: str) -> dict[date, bool]:
        assert self.store is not None
        days: dict[date, bool] = {}
        for name in self.store.list(relative, recursive=True):
            folder, _, file = name.partition("/")
            day = _partition_day(folder) if file else None
            if day is not None:
                days[day] = days.get(day, False) or file == SUCCESS_MARKER
        return dict(sorted(days.items()))

    @staticmethod
    def is_complete(partition: Path) -> bool:
        return (partition / SUCCESS_MARKER).is_file()

    def landed(self, partition: Path) -> bool:
        """Whether the partition is complete in the lake (for S3: its `_SUCCESS` object exists)."""
        if self.store is None:
            return self.is_complete(partition)
        return self.store.exists(self._relative(partition / SUCCESS_MARKER))

    def available(self, partition: Path) -> bool:
        """Whether the partition is complete; for S3 it is also staged into the working copy."""
        if not self.landed(partition):
            return False
        if self.store is not None:
            self.stage_in(partition)
        return True

    def require_complete(self, partition: Path) -> list[Path]:
        """The partition's Parquet files; fails clearly when it is missing, unmarked or empty."""
        if self.store is not None:
            self.stage_in(partition)
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
        if self.store is not None:
            self.upload_partition(final)

    # --- S3: the working copy and the bucket -------------------------------------------------

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def remote_url(self, path: Path) -> str:
        """Where a working-copy path lives in the lake (itself for a local lake)."""
        return self.store.url(self._relative(path)) if self.store is not None else str(path)

    def upload_partition(self, partition: Path) -> None:
        """Publish a committed local partition to S3: data files first, `_SUCCESS` (the manifest) last.

        The old marker is deleted first, so while a partition is replaced S3 readers see it
        incomplete, never a mix of old and new files.
        """
        assert self.store is not None
        relative = self._relative(partition)
        files = partition_files(partition)
        manifest = {"files": {p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in files}}
        self.store.delete([f"{relative}/{SUCCESS_MARKER}"])
        for path in files:
            self.store.upload(path, f"{relative}/{path.name}")
        stale = set(self.store.list(relative)) - {p.name for p in files} - {SUCCESS_MARKER}
        self.store.delete([f"{relative}/{name}" for name in sorted(stale)])
        marker = json.dumps(manifest, indent=1, sort_keys=True).encode()
        self.store.put_bytes(f"{relative}/{SUCCESS_MARKER}", marker)
        write_bytes_atomic(partition / SUCCESS_MARKER, marker)

    def stage_in(self, partition: Path) -> None:
        """Make the working copy of an S3 partition match the lake, verifying every file's checksum.

        The expected files come from the `_SUCCESS` manifest (sizes and SHA-256) or, for
        partitions landed by other writers with an empty marker, from the listing (sizes and
        the ETag's MD5). A matching working copy is kept; otherwise it is replaced atomically.
        """
        assert self.store is not None
        relative = self._relative(partition)
        listing = self.store.list(relative)
        if SUCCESS_MARKER not in listing:
            state = "does not exist" if not listing else f"has no {SUCCESS_MARKER} marker: not complete"
            raise PartitionError(f"partition {self.store.url(relative)} {state}")
        marker = self.store.get_bytes(f"{relative}/{SUCCESS_MARKER}")
        expected = _expected_files(marker, listing)
        if self.is_complete(partition) and _matches(partition, expected):
            return
        base = self.root / "_staging" / "in" / relative
        staging = base / uuid.uuid4().hex
        try:
            for name in expected:
                self.store.download(f"{relative}/{name}", staging / name)
            if not _matches(staging, expected):
                raise ChecksumMismatch(
                    f"partition {self.store.url(relative)}: the downloaded files do not match its manifest"
                )
            write_bytes_atomic(staging / SUCCESS_MARKER, marker)
            replace_dir(staging, partition)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # only ours: another task may stage the same day

    def push_tree(self, folder: Path, last: tuple[str, ...] = ()) -> None:
        """Mirror a working-copy folder (reports, a model's registry) to S3; files named in `last` go last."""
        if self.store is None or not folder.is_dir():
            return
        relative = self._relative(folder)
        remote = self.store.list(relative, recursive=True)
        files = [p for p in sorted(folder.rglob("*")) if p.is_file() and not _private(p.relative_to(folder))]
        files.sort(key=lambda p: p.name in last)
        for path in files:
            name = path.relative_to(folder).as_posix()
            known = remote.get(name)
            if known is None or known.size != path.stat().st_size or known.md5 != _md5(path):
                self.store.upload(path, f"{relative}/{name}")

    def pull_tree(self, folder: Path) -> None:
        """Bring a folder's objects from S3 into the working copy (changed files only, each atomically)."""
        if self.store is None:
            return
        relative = self._relative(folder)
        for name, info in self.store.list(relative, recursive=True).items():
            path = folder / name
            if path.is_file() and path.stat().st_size == info.size and info.md5 in (None, _md5(path)):
                continue
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
            self.store.download(f"{relative}/{name}", tmp)
            os.replace(tmp, path)


def _partition_day(folder: str) -> date | None:
    """The day a `dt=YYYY-MM-DD` folder name stands for; None for any other name."""
    if not folder.startswith("dt="):
        return None
    try:
        return date.fromisoformat(folder.removeprefix("dt="))
    except ValueError:
        return None


def _private(relative: Path) -> bool:
    """Locks, temp files and staging folders never leave the machine."""
    return any(part.startswith(".") for part in relative.parts)


def _md5(path: Path) -> str:
    from batchscore.storage.object_store import file_md5

    return file_md5(path)


def _expected_files(marker: bytes, listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> {"bytes", and "sha256" or "md5"} for a remote partition."""
    if marker.strip():
        try:
            return dict(json.loads(marker)["files"])
        except (ValueError, KeyError, TypeError):
            pass
    expected: dict[str, dict[str, Any]] = {}
    for name, info in listing.items():
        if name != SUCCESS_MARKER and not name.startswith("."):
            expected[name] = {"bytes": info.size, **({"md5": info.md5} if info.md5 else {})}
    return expected


def _matches(folder: Path, expected: dict[str, dict[str, Any]]) -> bool:
    for name, want in expected.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != want["bytes"]:
            return False
        if "sha256" in want and file_sha256(path) != want["sha256"]:
            return False
        if "md5" in want and _md5(path) != want["md5"]:
            return False
    return True


def partition_files(partition: Path) -> list[Path]:
    """Everything a partition holds but its marker and Spark's checksum side files."""
    return sorted(
        p
        for p in partition.iterdir()
        if p.is_file()
        and p.name != SUCCESS_MARKER
        and not p.name.startswith(".")
        and not p.name.endswith(".crc")
    )


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
