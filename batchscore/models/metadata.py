"""A model version's metadata (`metadata.json`), typed and validated when it is read back.

The registry writes the JSON; every reader goes through `ModelMetadata.from_json`, which
checks the fields scoring depends on (the feature set and its hash, the input order, the
task, every artifact's SHA-256) and names the file and the field when one is missing or of
the wrong type. The whole document stays available as `document` for what is only shown,
never computed on (the model card, training metrics).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from batchscore.errors import PermanentFailure

TASKS = ("binary", "multiclass", "regression")


class BadModelMetadata(PermanentFailure, ValueError):
    """A version's metadata.json lacks a field scoring needs, or holds the wrong type."""


@dataclass(frozen=True)
class ArtifactRecord:
    """One stored artifact: its SHA-256 (checked before every load) and size."""

    sha256: str
    size: int | None = None


@dataclass(frozen=True)
class FeatureSetRef:
    """The feature set a model was trained on: its name, version, columns and content hash."""

    name: str
    version: str
    features: tuple[str, ...]
    hash: str


@dataclass(frozen=True)
class ModelMetadata:
    """What a version's metadata.json guarantees, typed; `document` is the whole JSON."""

    model: str
    version: int
    task: str
    feature_set: FeatureSetRef
    feature_order: tuple[str, ...]
    """the model's input columns in its own order (an imported model may permute the set's)"""
    artifacts: Mapping[str, ArtifactRecord]
    document: Mapping[str, Any]

    @classmethod
    def from_json(cls, data: Any, where: str) -> ModelMetadata:
        """Validate a parsed metadata.json (`where` names it in errors)."""
        if not isinstance(data, dict):
            raise BadModelMetadata(f"{where}: expected a JSON object, found {type(data).__name__}")
        features = typed_field(data, "feature_set", dict, where)
        feature_set = FeatureSetRef(
            name=str(features.get("name", "")),
            version=str(features.get("version", "")),
            features=_names(
                typed_field(features, "features", list, f"{where} feature_set"), where, "feature_set.features"
            ),
            hash=typed_field(features, "hash", str, f"{where} feature_set"),
        )
        order = data.get("feature_order") or list(feature_set.features)
        task = data.get("task", "binary")  # versions from before task types are binary
        if task not in TASKS:
            raise BadModelMetadata(f"{where}: task {task!r} is not one of {', '.join(TASKS)}")
        artifacts = {
            name: ArtifactRecord(
                typed_field(record, "sha256", str, f"{where} artifacts.{name}"), record.get("bytes")
            )
            for name, record in typed_field(data, "artifacts", dict, where).items()
        }
        return cls(
            model=typed_field(data, "model", str, where),
            version=typed_field(data, "version", int, where),
            task=str(task),
            feature_set=feature_set,
            feature_order=_names(order, where, "feature_order"),
            artifacts=MappingProxyType(artifacts),
            document=MappingProxyType(data),
        )


def typed_field(
    data: Mapping[str, Any], name: str, kind: type, where: str, error: type[Exception] = BadModelMetadata
) -> Any:
    """`data[name]` when it is a `kind` (a bool is no int); else `error` naming where, the field and what was found."""
    value = data.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        found = "nothing" if value is None else type(value).__name__
        raise error(f"{where}: field {name!r} must be a {kind.__name__}, found {found}")
    return value


def _names(values: Any, where: str, field: str) -> tuple[str, ...]:
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise BadModelMetadata(f"{where}: {field} must be a non-empty list of column names")
    return tuple(values)
