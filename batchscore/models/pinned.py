"""The model a nightly run is pinned to: what `resolve_model` decides once, at the start of the
run, and every later task of the run (retries included) reads back from its XCom."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from batchscore.errors import PermanentFailure


class BadStageResult(PermanentFailure, ValueError):
    """A stage result read back from XCom lacks a field or holds the wrong type."""


@dataclass(frozen=True)
class PinnedModel:
    """The champion version a run scores with (and where it came from: the alias on the run's
    day, a pinned `model_version`, a fallback), and the challenger pinned to shadow-score."""

    model_name: str
    model_version: int
    feature_set_hash: str
    source: str
    challenger_version: int | None = None

    STAGE: ClassVar[str] = "resolve_model"

    def to_xcom(self) -> dict[str, Any]:
        """The task's XCom (the keys it has always had)."""
        return {
            "stage": self.STAGE,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "feature_set_hash": self.feature_set_hash,
            "source": self.source,
            "challenger_version": self.challenger_version,
        }

    @classmethod
    def from_xcom(cls, value: Any) -> PinnedModel:
        """Read back `resolve_model`'s XCom, checking every field."""
        where = "resolve_model's result"
        if not isinstance(value, Mapping):
            raise BadStageResult(f"{where}: expected a mapping, found {type(value).__name__}")
        challenger = value.get("challenger_version")
        return cls(
            model_name=_typed(value, "model_name", str, where),
            model_version=_typed(value, "model_version", int, where),
            feature_set_hash=_typed(value, "feature_set_hash", str, where),
            source=_typed(value, "source", str, where),
            challenger_version=None
            if challenger is None
            else _typed(value, "challenger_version", int, where),
        )


def _typed(value: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    found = value.get(name)
    if not isinstance(found, kind) or (kind is int and isinstance(found, bool)):
        shown = "nothing" if found is None else type(found).__name__
        raise BadStageResult(f"{where}: field {name!r} must be a {kind.__name__}, found {shown}")
    return found
