"""Partition manifests: what a writer records beside a partition's data files, typed.

One format and one reader. A manifest is a frozen `PartitionManifest` record written as a JSON
object (sorted keys) by `write_manifest`, atomically, inside the staged partition so that it is
committed with the data; `read_manifest` reads it back, checks every field against its declared
type and names the file and the field when one is missing or wrong. Each kind keeps the file
name and keys it always had, so lakes written by earlier versions read the same and the other
way round:

- `StageManifest` (`_batchscore.json`): a stage's fingerprint, its result and the data files'
  sizes (reuse); a features partition adds its lineage (feature set, rows, input checksum);
- `ReasonsManifest` (`_reasons.json`): which scores a reasons partition explains;
- `QuarantineManifest` (`_QUARANTINE.json`): the raw gate's verdict on the held-aside rows.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from batchscore.storage.lake import REASONS_MANIFEST, PartitionError, write_bytes_atomic


class BadManifest(PartitionError, ValueError):
    """A partition's manifest is missing, is not JSON, or a field is missing or of the wrong type."""


M = TypeVar("M", bound="PartitionManifest")
T = TypeVar("T")


@dataclass(frozen=True)
class PartitionManifest:
    """The fields every kind of manifest shares (none: each kind declares its own) and how it
    turns into JSON and back."""

    FILE: ClassVar[str] = ""
    KEEP_NULLS: ClassVar[bool] = True
    """Write fields that are None as `null` (False: leave them out, as the stage manifest always has)."""

    def to_json(self) -> dict[str, Any]:
        """The JSON object on disk (the keys earlier versions wrote)."""
        document = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return document if self.KEEP_NULLS else {k: v for k, v in document.items() if v is not None}

    @classmethod
    def from_json(cls: type[M], data: Any, where: str) -> M:
        """Validate a parsed manifest (`where` names the file in errors); unknown keys are ignored."""
        if not isinstance(data, dict):
            raise BadManifest(f"{where}: expected a JSON object, found {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        values = {}
        for field in dataclasses.fields(cls):
            required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            if field.name not in data:
                if required:
                    raise BadManifest(f"{where}: field {field.name!r} is missing")
                continue
            value = data[field.name]
            if not _conforms(value, hints[field.name]):
                found = "null" if value is None else type(value).__name__
                raise BadManifest(f"{where}: field {field.name!r} must be {hints[field.name]}, found {found}")
            values[field.name] = value
        return cls(**values)

    def need(self, value: T | None, name: str) -> T:
        """`value` (this manifest's field `name`), failing clearly when the writer left it out."""
        if value is None:
            raise BadManifest(f"{self.FILE}: field {name!r} is missing; rebuild the partition")
        return value


@dataclass(frozen=True)
class StageManifest(PartitionManifest):
    """`_batchscore.json`: the stage's fingerprint and result (reused by a rerun with the same
    fingerprint while `files` still match), and, for a features partition, its lineage."""

    FILE: ClassVar[str] = "_batchscore.json"
    KEEP_NULLS: ClassVar[bool] = False

    fingerprint: str | None = None
    computed_at: str | None = None
    files: dict[str, int] | None = None
    result: dict[str, Any] | None = None
    pipeline: str | None = None
    run_date: str | None = None
    feature_set: dict[str, Any] | None = None
    columns: list[str] | None = None
    rows: int | None = None
    input_partition: str | None = None
    input_checksum: str | None = None

    @property
    def feature_set_hash(self) -> str:
        """The hash of the feature set a features partition was built with."""
        stamp = self.need(self.feature_set, "feature_set")
        if not isinstance(stamp.get("hash"), str):
            raise BadManifest(f"{self.FILE}: field 'feature_set.hash' must be a str")
        return str(stamp["hash"])


@dataclass(frozen=True)
class ReasonsManifest(PartitionManifest):
    """`_reasons.json`: the model and the scores (by checksum) a reasons partition explains."""

    FILE: ClassVar[str] = REASONS_MANIFEST

    model_version: int
    top_k: int
    scores_checksum: str
    method: str | None = None
    rows: int | None = None
    mean_abs_contribution: dict[str, float] | None = None


@dataclass(frozen=True)
class QuarantineManifest(PartitionManifest):
    """`_QUARANTINE.json`: the rows validate_raw held aside, of which raw partition (checksum),
    and the clean partition it wrote (None when no row was held aside)."""

    FILE: ClassVar[str] = "_QUARANTINE.json"

    raw_checksum: str
    quarantined_rows: int
    clean_checksum: str | None = None
    rows: int | None = None
    kept_rows: int | None = None
    max_share: float | None = None
    max_rows: int | None = None
    rules: dict[str, int] | None = None
    table: str | None = None
    pipeline: str | None = None
    run_date: str | None = None
    raw_partition: str | None = None
    suite_sha256: str | None = None
    clean_partition: str | None = None


def write_manifest(folder: Path, manifest: PartitionManifest) -> None:
    """Write `manifest` into `folder` (a staged partition: after its data files, before its commit)."""
    document = json.dumps(manifest.to_json(), indent=2, sort_keys=True, default=str)
    write_bytes_atomic(folder / manifest.FILE, document.encode())


def read_manifest(partition: Path, kind: type[M], what: str = "partition", remedy: str = "") -> M:
    """The partition's manifest of `kind`, validated; BadManifest names the file when it is
    missing (`what` and `remedy` complete that message) or malformed."""
    path = partition / kind.FILE
    if not path.is_file():
        raise BadManifest(f"{what} {partition} has no {kind.FILE}" + (f"; {remedy}" if remedy else ""))
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadManifest(f"{path}: unreadable manifest: {exc}") from exc
    return kind.from_json(data, str(path))


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def _conforms(value: Any, hint: Any) -> bool:
    """Whether parsed JSON `value` is of type `hint` (str, int, float, bool, Any, unions with
    None, dict[str, X], list[X])."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, member) for member in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is dict:
        _, item = typing.get_args(hint)
        return isinstance(value, dict) and all(_conforms(v, item) for v in value.values())
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_conforms(v, item) for v in value)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)
