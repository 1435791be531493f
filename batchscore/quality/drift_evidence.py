"""What the drift stage hands on: the evidence the drift gate decides on (drifted shares and
features, the score's drift, per segment) and the stage's report around it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from batchscore.errors import BadStageResult


def _field(
    value: Mapping[str, Any], name: str, kinds: tuple[type, ...], where: str, optional: bool = False
) -> Any:
    """`value[name]` when it is one of `kinds` (a bool is no number); None when absent and `optional`."""
    found = value.get(name)
    if found is None and optional:
        return None
    if not isinstance(found, kinds) or (isinstance(found, bool) and bool not in kinds):
        what = " or ".join(k.__name__ for k in kinds)
        raise BadStageResult(
            f"{where}: field {name!r} must be a {what}, found {'nothing' if found is None else type(found).__name__}"
        )
    return found


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadStageResult(f"{where}: expected a mapping, found {type(value).__name__}")
    return value


@dataclass(frozen=True)
class DriftEvidence:
    """The drift gate's input: the share of drifted features and which, the score's drift
    (method, statistic, verdict), the same per segment, and the report's path when there is one."""

    drifted_share: float
    drifted_features: tuple[str, ...] = ()
    prediction_method: str | None = None
    prediction_statistic: float | None = None
    prediction_drifted: bool = False
    segments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    report: str | None = None

    def to_xcom(self) -> dict[str, Any]:
        """The evidence's keys in the drift stage's XCom (the keys they have always had)."""
        return {
            "drifted_share": self.drifted_share,
            "drifted_features": list(self.drifted_features),
            "prediction_method": self.prediction_method,
            "prediction_statistic": self.prediction_statistic,
            "prediction_drifted": self.prediction_drifted,
            "segments": {name: dict(seg) for name, seg in self.segments.items()},
            "report": self.report,
        }

    @classmethod
    def from_xcom(cls, value: Any, where: str = "drift's result") -> DriftEvidence:
        """Read the evidence back from the drift stage's XCom, checking every field."""
        value = _mapping(value, where)
        features = _field(value, "drifted_features", (list,), where)
        if not all(isinstance(name, str) for name in features):
            raise BadStageResult(f"{where}: field 'drifted_features' must list feature names")
        segments = _field(value, "segments", (dict,), where)
        for name, seg in segments.items():
            _field(
                _mapping(seg, f"{where}, segment {name}"),
                "drifted_share",
                (int, float),
                f"{where}, segment {name}",
            )
        return cls(
            drifted_share=_field(value, "drifted_share", (int, float), where),
            drifted_features=tuple(features),
            prediction_method=_field(value, "prediction_method", (str,), where, optional=True),
            prediction_statistic=_field(value, "prediction_statistic", (int, float), where, optional=True),
            prediction_drifted=_field(value, "prediction_drifted", (bool,), where),
            segments=segments,
            report=_field(value, "report", (str,), where, optional=True),
        )


@dataclass(frozen=True)
class DriftReport:
    """The drift stage's result: the rows compared, the gate's evidence, and the rest of the
    stage's report as it was (the JSON report, its sample, shifted attributions, timings)."""

    rows: int
    evidence: DriftEvidence
    seconds: float
    details: Mapping[str, Any] = field(default_factory=dict)

    TYPED: ClassVar[tuple[str, ...]] = (
        "stage",
        "rows",
        "seconds",
        *("drifted_share", "drifted_features", "prediction_method", "prediction_statistic"),
        *("prediction_drifted", "segments", "report"),
    )

    def to_xcom(self) -> dict[str, Any]:
        """The task's XCom (the keys it has always had)."""
        return {
            "stage": "drift",
            "rows": self.rows,
            **self.evidence.to_xcom(),
            **self.details,
            "seconds": self.seconds,
        }

    @classmethod
    def from_xcom(cls, value: Any) -> DriftReport:
        """Read back the drift stage's XCom, checking the rows, the timing and the evidence."""
        where = "drift's result"
        value = _mapping(value, where)
        return cls(
            rows=_field(value, "rows", (int,), where),
            evidence=DriftEvidence.from_xcom(value, where),
            seconds=float(_field(value, "seconds", (int, float), where)),
            details={k: v for k, v in value.items() if k not in cls.TYPED},
        )
