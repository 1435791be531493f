"""Validation gates: Great Expectations 1.x suites from `expectations/`, run on a pandas frame.

A suite file is the GX 1.x suite JSON (`{"name", "expectations": [{"type", "kwargs",
"severity"?}]}`); expectations with `"severity": "warning"` are reported but do not fail
the gate. GX silently drops expectations it does not recognise, so loading compares counts
and names the dropped ones. Every run writes `result.json` and a self-contained
`report.html` (no CDN assets: it renders offline).
"""

from __future__ import annotations

import html
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchscore.errors import PermanentFailure
from batchscore.lake import write_bytes_atomic

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationSuite

MAX_EXAMPLES = 5


class SuiteError(PermanentFailure, ValueError):
    """A suite file is unreadable or holds expectations GX does not recognise."""


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
            counts = f": observed {_short(self.observed)}"
        examples = f", e.g. {_short(self.examples)}" if self.examples else ""
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
    rows: int = 0
    json_path: str = ""
    html_path: str = ""
    seconds: float = 0.0

    def summary(self) -> str:
        """One readable message: what was checked, what failed, where the report is."""
        status = "passed" if self.success else "FAILED"
        lines = [
            f"validation {status}: pipeline {self.pipeline}, dataset {self.dataset} ({self.stage}), "
            f"partition {self.partition}: {self.passed}/{self.evaluated} expectations met on {self.rows} rows"
        ]
        for failure in self.failed:
            lines.append(f"  - [{failure.severity}] {failure.describe()}")
        lines.append(f"  report: {self.html_path}")
        return "\n".join(lines)


class ValidationFailed(PermanentFailure, RuntimeError):
    """A gate failed: the message names the dataset, the partition and each failed expectation."""

    def __init__(self, outcome: ValidationOutcome):
        super().__init__(outcome.summary())
        self.result = outcome


def load_suite(path: str | Path) -> ExpectationSuite:
    """The suite in `path`; fails if GX did not recognise every expectation in the file."""
    import great_expectations as gx

    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise SuiteError(f"expectation suite {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(f"expectation suite {path} is not valid JSON: {exc}") from None
    declared = raw.get("expectations", [])
    if not declared:
        raise SuiteError(f"expectation suite {path} declares no expectations")
    suite = _quietly(lambda: gx.ExpectationSuite(name=raw.get("name") or path.stem, expectations=declared))
    if len(suite.expectations) != len(declared):
        dropped = [
            f"{entry.get('type')!r} ({_rejection(entry)})"
            for entry in declared
            if not _quietly(
                lambda entry=entry: gx.ExpectationSuite(name="probe", expectations=[entry])
            ).expectations
        ]
        raise SuiteError(
            f"expectation suite {path}: GX recognised {len(suite.expectations)} of {len(declared)} "
            f"expectations; not recognised: {', '.join(dropped)}"
        )
    return suite


def _rejection(entry: dict[str, Any]) -> str:
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    try:
        config = ExpectationConfiguration(**entry)
        ExpectationSuite(name="probe")._build_expectation(config)
    except Exception as exc:
        return str(exc).split(":")[-1].strip()
    return "unknown reason"


def _quietly(build: Any) -> Any:
    """Run a GX call with its logger muted (it logs a traceback for each dropped expectation)."""
    import logging

    logger = logging.getLogger("great_expectations")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        return build()
    finally:
        logger.setLevel(level)


_BATCH_DEFINITION: Any = None


def _batch_definition() -> Any:
    """One ephemeral GX context per process with a whole-dataframe batch definition."""
    global _BATCH_DEFINITION
    if _BATCH_DEFINITION is None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        asset = context.data_sources.add_pandas("batchscore").add_dataframe_asset(name="partition")
        _BATCH_DEFINITION = asset.add_batch_definition_whole_dataframe("whole partition")
    return _BATCH_DEFINITION


def validate_frame(
    df: pd.DataFrame,
    suite_path: str | Path,
    *,
    pipeline: str,
    dataset: str,
    stage: str,
    partition: str,
    report_dir: str | Path,
    raise_on_failure: bool = True,
) -> ValidationOutcome:
    """Validate `df` against a suite, write the JSON and HTML reports, raise if the gate fails."""
    started = time.perf_counter()
    suite = load_suite(suite_path)
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(
        suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}
    )
    failed = [_failure(r) for r in result.results if not r.success]
    blocking = [f for f in failed if f.severity != "warning"]
    report_dir = Path(report_dir)
    outcome = ValidationOutcome(
        pipeline=pipeline,
        dataset=dataset,
        stage=stage,
        partition=partition,
        success=not blocking,
        evaluated=len(result.results),
        passed=sum(1 for r in result.results if r.success),
        failed=failed,
        rows=len(df),
        json_path=str(report_dir / "result.json"),
        html_path=str(report_dir / "report.html"),
        seconds=time.perf_counter() - started,
    )
    details = [_result_row(r) for r in result.results]
    document = {"outcome": asdict(outcome), "expectations": details}
    write_bytes_atomic(Path(outcome.json_path), json.dumps(_jsonable(document), indent=2).encode())
    write_bytes_atomic(Path(outcome.html_path), render_html(outcome, details).encode())
    if blocking and raise_on_failure:
        raise ValidationFailed(outcome)
    return outcome


def _severity(config: Any) -> str:
    value = getattr(config, "severity", None)
    value = getattr(value, "value", value) or "critical"
    return "warning" if str(value).lower() in ("warning", "info") else "error"


def _failure(r: Any) -> FailedExpectation:
    config = r.expectation_config
    res = r.result or {}
    exception = (
        (r.exception_info or {}).get("exception_message") if isinstance(r.exception_info, dict) else None
    )
    return FailedExpectation(
        type=config.type,
        column=config.kwargs.get("column"),
        kwargs=_jsonable(dict(config.kwargs)),
        unexpected_count=res.get("unexpected_count"),
        unexpected_percent=res.get("unexpected_percent"),
        examples=_jsonable(list(res.get("partial_unexpected_list") or [])[:MAX_EXAMPLES]),
        severity=_severity(config),
        observed=_jsonable(res.get("observed_value", exception)),
    )


def _result_row(r: Any) -> dict[str, Any]:
    config = r.expectation_config
    res = r.result or {}
    return _jsonable(
        {
            "type": config.type,
            "column": config.kwargs.get("column"),
            "kwargs": {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "column")},
            "severity": _severity(config),
            "success": bool(r.success),
            "unexpected_count": res.get("unexpected_count"),
            "unexpected_percent": res.get("unexpected_percent"),
            "examples": list(res.get("partial_unexpected_list") or [])[:MAX_EXAMPLES],
            "observed": res.get("observed_value"),
        }
    )


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN/inf spelled as strings, dates as ISO."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
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


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(_jsonable(value), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2430}
h1{font-size:20px;margin:0 0 4px} .meta{color:#566070;margin-bottom:16px}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:600;color:#fff}
.ok{background:#1f8a4c} .bad{background:#c62828} .warn{background:#b26a00}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #e3e6ea;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f5f7f9;font-weight:600} tr.fail td{background:#fdecec} tr.warning td{background:#fff6e5}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;white-space:pre-wrap;word-break:break-word}
"""


def render_html(outcome: ValidationOutcome, rows: list[dict[str, Any]]) -> str:
    """A self-contained HTML report (inline CSS, no scripts, no external assets)."""
    e = html.escape
    status = "PASSED" if outcome.success else "FAILED"
    badge = "ok" if outcome.success else "bad"
    body = []
    for row in rows:
        state = "pass" if row["success"] else ("warning" if row["severity"] == "warning" else "fail")
        count = (
            ""
            if row["unexpected_count"] is None
            else f"{row['unexpected_count']} ({row['unexpected_percent'] or 0:.4g}%)"
        )
        body.append(
            f"<tr class='{state}'><td>{e(state)}</td><td><code>{e(row['type'])}</code></td>"
            f"<td>{e(str(row['column'] or ''))}</td><td><code>{e(_short(row['kwargs'], 400))}</code></td>"
            f"<td>{e(row['severity'])}</td><td>{e(count)}</td>"
            f"<td><code>{e(_short(row['examples'], 300)) if row['examples'] else ''}</code></td>"
            f"<td><code>{e(_short(row['observed'], 300)) if row['observed'] is not None else ''}</code></td></tr>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(outcome.dataset)} {e(outcome.stage)} validation</title>
<style>{STYLE}</style></head><body>
<h1>{e(outcome.pipeline)} · {e(outcome.dataset)} · {e(outcome.stage)} <span class="badge {badge}">{status}</span></h1>
<div class="meta">partition <code>{e(outcome.partition)}</code><br>{outcome.passed}/{outcome.evaluated} expectations met
on {outcome.rows} rows in {outcome.seconds:.2f}s</div>
<table><thead><tr><th>status</th><th>expectation</th><th>column</th><th>arguments</th><th>severity</th>
<th>unexpected</th><th>examples</th><th>observed</th></tr></thead><tbody>
{"".join(body)}
</tbody></table></body></html>
"""
