"""What a gate decided: its outcome, each failed expectation, and the JSON-safe rows of
`result.json` that the HTML report is rendered from.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from batchscore.errors import PermanentFailure
from batchscore.quality.pii import NO_PII, PiiMask

MAX_EXAMPLES = 5


@dataclass(frozen=True)
class FailedExpectation:
    type: str
    column: str | None
    kwargs: dict[str, Any]
    unexpected_count: int | None
    unexpected_percent: float | None
    examples: list[Any]
    severity: str
    observed: Any = None

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        counts = ""
        if self.unexpected_count is not None:
            counts = f": {self.unexpected_count} unexpected ({self.unexpected_percent or 0:.4g}%)"
        elif self.observed is not None:
            counts = f": observed {short_json(self.observed)}"
        examples = f", e.g. {short_json(self.examples)}" if self.examples else ""
        return f"{self.type}{where}{counts}{examples}"


@dataclass(frozen=True)
class ValidationOutcome:
    pipeline: str
    dataset: str
    stage: str
    partition: str
    success: bool
    evaluated: int
    passed: int
    failed: list[FailedExpectation] = field(default_factory=list)
    contract: list[str] = field(default_factory=list)
    suite: str = ""
    engine: str = "pandas"
    rows: int = 0
    json_path: str = ""
    html_path: str = ""
    seconds: float = 0.0
    workers: int = 0
    """Processes that ran the suite (0 when the contract failed first)."""

    def summary(self) -> str:
        """One readable message: what was checked, what failed, where the report is."""
        status = "passed" if self.success else "FAILED"
        where = (
            f"validation {status}: pipeline {self.pipeline}, dataset {self.dataset} ({self.stage}), "
            f"partition {self.partition}"
        )
        if self.contract:
            lines = [f"{where}: the partition breaks the contract declared in {self.suite}"]
            lines += [f"  - {problem}" for problem in self.contract]
        else:
            lines = [f"{where}: {self.passed}/{self.evaluated} expectations met on {self.rows} rows"]
            lines += [f"  - [{f.severity}] {f.describe()}" for f in self.failed]
        lines.append(f"  report: {self.html_path}")
        return "\n".join(lines)


class ValidationFailed(PermanentFailure, RuntimeError):
    """A gate failed: the message names the dataset, the partition and each failed check."""

    def __init__(self, outcome: ValidationOutcome):
        super().__init__(outcome.summary())
        self.result = outcome


def _severity(config: Any) -> str:
    value = getattr(config, "severity", None)
    value = getattr(value, "value", value) or "critical"
    return "warning" if str(value).lower() in ("warning", "info") else "error"


def failed_expectation(r: Any, pii: PiiMask = NO_PII) -> FailedExpectation:
    """A failed result as shown; values of PII columns (examples, observed) hashed by `pii`."""
    config = r.expectation_config
    res = r.result or {}
    exception = (
        (r.exception_info or {}).get("exception_message") if isinstance(r.exception_info, dict) else None
    )
    mask = pii.value if pii.applies(config.kwargs) else _shown
    return FailedExpectation(
        type=config.type,
        column=config.kwargs.get("column"),
        kwargs=jsonable({k: v for k, v in config.kwargs.items() if k != "batch_id"}),
        unexpected_count=res.get("unexpected_count"),
        unexpected_percent=res.get("unexpected_percent"),
        examples=mask(_examples(config.type, res)),
        severity=_severity(config),
        observed=mask(jsonable(res.get("observed_value", exception))),
    )


def _shown(value: Any) -> Any:
    return value


def _examples(expectation_type: str, result: dict[str, Any]) -> list[Any]:
    """A few unexpected values; none for null checks, where every example would be null."""
    if expectation_type == "expect_column_values_to_not_be_null":
        return []
    return list(jsonable(list(result.get("partial_unexpected_list") or [])[:MAX_EXAMPLES]))


def result_row(r: Any, pii: PiiMask = NO_PII) -> dict[str, Any]:
    """One expectation's row of `result.json`; values of PII columns hashed by `pii`."""
    config = r.expectation_config
    res = r.result or {}
    mask = pii.value if pii.applies(config.kwargs) else _shown
    return jsonable(
        {
            "type": config.type,
            "column": config.kwargs.get("column"),
            "kwargs": {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "column")},
            "severity": _severity(config),
            "success": bool(r.success),
            "unexpected_count": res.get("unexpected_count"),
            "unexpected_percent": res.get("unexpected_percent"),
            "examples": mask(_examples(config.type, res)),
            "observed": mask(jsonable(res.get("observed_value"))),
            **({"pii": True} if mask is not _shown else {}),
        }
    )


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN/inf spelled as strings, dates as ISO."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def short_json(value: Any, limit: int = 160) -> str:
    text = json.dumps(jsonable(value), default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
