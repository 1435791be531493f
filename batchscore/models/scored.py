"""What the score stage hands on: where the champion's scores went and, when a challenger was
scored in shadow, where its scores went (what `publish_shadow` publishes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict

from batchscore.models.metadata import typed_field
from batchscore.models.pinned import BadStageResult


class ShadowXCom(TypedDict):
    """The `challenger` entry of the score stage's XCom."""

    model_version: int
    rows: int
    path: str


@dataclass(frozen=True)
class ShadowScores:
    """The challenger's scores partition, scored in shadow alongside the champion's."""

    model_version: int
    rows: int
    path: str

    def to_xcom(self) -> ShadowXCom:
        return {"model_version": self.model_version, "rows": self.rows, "path": self.path}

    @classmethod
    def from_xcom(cls, value: Any, where: str) -> ShadowScores:
        """Read back the `challenger` entry, checking every field; `where` names the result it is in."""
        if not isinstance(value, Mapping):
            raise BadStageResult(f"{where}: expected a mapping, found {type(value).__name__}")
        return cls(
            model_version=typed_field(value, "model_version", int, where, BadStageResult),
            rows=typed_field(value, "rows", int, where, BadStageResult),
            path=typed_field(value, "path", str, where, BadStageResult),
        )


@dataclass(frozen=True)
class ScoreResult:
    """The score stage's result: the champion's rows and partition, whether an earlier pass's
    output was reused, the challenger's shadow scores (None when none was scored) and the rest
    of the stage's report as it was (devices, tasks, model loads, reasons, fingerprint, timings)."""

    model_version: int
    rows: int
    path: str
    reused: bool
    challenger: ShadowScores | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    STAGE: ClassVar[str] = "score"
    TYPED: ClassVar[tuple[str, ...]] = ("stage", "model_version", "rows", "path", "reused", "challenger")

    def to_xcom(self) -> dict[str, Any]:
        """The task's XCom (the keys it has always had)."""
        return {
            "stage": self.STAGE,
            "rows": self.rows,
            "path": self.path,
            "model_version": self.model_version,
            **self.details,
            "challenger": None if self.challenger is None else self.challenger.to_xcom(),
            "reused": self.reused,
        }

    @classmethod
    def from_xcom(cls, value: Any) -> ScoreResult:
        """Read back the score stage's XCom (or its stored result), checking the typed fields."""
        where = "score's result"
        if not isinstance(value, Mapping):
            raise BadStageResult(f"{where}: expected a mapping, found {type(value).__name__}")
        challenger = value.get("challenger")
        return cls(
            model_version=typed_field(value, "model_version", int, where, BadStageResult),
            rows=typed_field(value, "rows", int, where, BadStageResult),
            path=typed_field(value, "path", str, where, BadStageResult),
            reused=typed_field(value, "reused", bool, where, BadStageResult),
            challenger=None
            if challenger is None
            else ShadowScores.from_xcom(challenger, f"{where}, its challenger"),
            details={k: v for k, v in value.items() if k not in cls.TYPED},
        )
