"""The model a nightly run is pinned to: what `resolve_model` decides once, at the start of the
run, and every later task of the run (retries included) reads back from its XCom."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from batchscore.errors import BadStageResult
from batchscore.models.metadata import typed_field

__all__ = ["BadStageResult", "PinnedModel"]


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
            model_name=typed_field(value, "model_name", str, where, BadStageResult),
            model_version=typed_field(value, "model_version", int, where, BadStageResult),
            feature_set_hash=typed_field(value, "feature_set_hash", str, where, BadStageResult),
            source=typed_field(value, "source", str, where, BadStageResult),
            challenger_version=None
            if challenger is None
            else typed_field(value, "challenger_version", int, where, BadStageResult),
        )
