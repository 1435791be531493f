"""Row quarantine: which raw rows break a strict row-level expectation, and why.

With `validation.quarantine: {max_share: ...}` the raw gate holds aside every row that breaks
an error-severity row-level expectation without a `mostly` tolerance (not null, between, in
set, regex, unique: all copies of a duplicated key) or holds NaN or infinity in a float
column, and gates the remaining rows. Expectations with `mostly` already tolerate their
share, warnings never block, and table-level ones (schema, row count, column means) never
quarantine: they judge the day, not a row. The rules are evaluated here with pyarrow, each
row against each rule, so the counts are exact and the same on every engine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from batchscore.quality.outcome import ValidationFailed, ValidationOutcome
from batchscore.quality.pii import NO_PII, PiiMask
from batchscore.quality.suites import FLOAT_TYPES, Suite, arrow_type_name

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

Broken = Callable[["pa.Table"], np.ndarray]


class QuarantineExceeded(ValidationFailed):
    """More rows broke row-level expectations than the pipeline's quarantine tolerates."""

    def __init__(self, outcome: ValidationOutcome, headline: str):
        RuntimeError.__init__(self, f"{outcome.summary()}\n{headline}")
        self.result = outcome


@dataclass(frozen=True)
class RowRule:
    """One row-level check: its name (shown in the quarantine table) and the rows breaking it."""

    name: str
    column: str
    broken: Broken


def _filled(mask: Any) -> np.ndarray:
    import pyarrow.compute as pc

    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _not_null(column: str) -> Broken:
    import pyarrow.compute as pc

    return lambda t: _filled(pc.is_null(t.column(column), nan_is_null=False))


def _between(column: str, kwargs: dict[str, Any]) -> Broken:
    import pyarrow.compute as pc

    def broken(table: pa.Table) -> np.ndarray:
        values, out = table.column(column), np.zeros(table.num_rows, dtype=bool)
        low, high = (_bound(kwargs.get(k), values.type) for k in ("min_value", "max_value"))
        if low is not None:
            below = pc.less_equal if kwargs.get("strict_min") else pc.less
            out |= _filled(below(values, low))
        if high is not None:
            above = pc.greater_equal if kwargs.get("strict_max") else pc.greater
            out |= _filled(above(values, high))
        return out

    return broken


def _bound(value: Any, kind: pa.DataType) -> Any:
    """A between bound as a scalar of the column's type where Arrow can cast it (dates from ISO text)."""
    import pyarrow as pa

    if value is None or isinstance(value, int | float):
        return value
    return pa.scalar(value).cast(kind)


def _in_set(column: str, values: list[Any]) -> Broken:
    import pyarrow as pa
    import pyarrow.compute as pc

    def broken(table: pa.Table) -> np.ndarray:
        col = table.column(column)
        allowed = pa.array(values).cast(col.type)
        return _filled(pc.and_(pc.is_valid(col), pc.invert(pc.is_in(col, value_set=allowed))))

    return broken


def _regex(column: str, pattern: str) -> Broken:
    import pyarrow.compute as pc

    return lambda t: _filled(pc.invert(pc.match_substring_regex(t.column(column), pattern)))


def _unique(column: str) -> Broken:
    import pyarrow as pa
    import pyarrow.compute as pc

    def broken(table: pa.Table) -> np.ndarray:
        col = table.column(column)
        counts = pa.table({"k": col}).group_by("k").aggregate([("k", "count")])
        repeated = counts.filter(pc.greater(counts.column("k_count"), 1)).column("k")
        return _filled(pc.is_in(col, value_set=repeated.combine_chunks(), skip_nulls=True))

    return broken


def _not_nan(column: str) -> Broken:
    import pyarrow.compute as pc

    return lambda t: _filled(pc.invert(pc.is_finite(t.column(column))))


def _strict(config: Any) -> bool:
    severity = getattr(config.severity, "value", config.severity) or "critical"
    mostly = config.kwargs.get("mostly")
    return str(severity).lower() not in ("warning", "info") and (mostly is None or mostly >= 1)


def _rule(kind: str, column: str, kwargs: dict[str, Any]) -> Broken | None:
    """The check of one row-level expectation kind (None: not one quarantine evaluates)."""
    if kind == "not_be_null":
        return _not_null(column)
    if kind == "be_between":
        return _between(column, kwargs)
    if kind == "be_in_set":
        return _in_set(column, list(kwargs["value_set"]))
    if kind == "match_regex":
        return _regex(column, str(kwargs["regex"]))
    if kind == "be_unique":
        return _unique(column)
    return None


def row_rules(suite: Suite, schema: pa.Schema) -> list[RowRule]:
    """The suite's strict row-level expectations, plus NaN/infinity in every float column."""
    rules = []
    for expectation in suite.expectations:
        config = expectation.configuration
        kwargs, column = dict(config.kwargs), config.kwargs.get("column")
        if not _strict(config) or column not in schema.names:
            continue
        kind = config.type.removeprefix("expect_column_values_to_")
        broken = _rule(kind, column, kwargs) if config.type.startswith("expect_column_values_to_") else None
        if broken is not None:
            name = "not_null" if kind == "not_be_null" else kind.removeprefix("be_")
            rules.append(RowRule(f"{name}({column})", column, broken))
    for field in schema:
        if arrow_type_name(field.type) in FLOAT_TYPES:
            rules.append(RowRule(f"finite({field.name})", field.name, _not_nan(field.name)))
    return rules


@dataclass(frozen=True)
class Verdict:
    """Which rows broke which rules: `bad` per row, and per rule its count."""

    rows: int
    bad: np.ndarray
    counts: dict[str, int]
    broken: dict[str, np.ndarray]

    @property
    def quarantined(self) -> int:
        return int(self.bad.sum())

    def rules_of(self, index: np.ndarray) -> list[str]:
        """For the bad rows at `index`, the rules each broke, joined with '; '."""
        return ["; ".join(name for name, mask in self.broken.items() if mask[i]) for i in index]

    def describe(self) -> str:
        listed = ", ".join(f"{name} {count:,}" for name, count in self.counts.items() if count)
        return f"{self.quarantined:,} of {self.rows:,} rows ({listed})" if self.quarantined else "no rows"


def judge(table: pa.Table, rules: list[RowRule]) -> Verdict:
    """Evaluate every rule on every row of `table`."""
    return _combine(table.num_rows, rules, [_evaluate(rule, table) for rule in rules])


def judge_by_column(column_of_day: Callable[[str], pa.Table], rows: int, rules: list[RowRule]) -> Verdict:
    """judge() without the whole day in memory: `column_of_day(name)` reads one column of every
    row, and each column is read once and dropped once its rules have run (each rule reads one)."""
    by_column: dict[str, list[int]] = {}
    for i, rule in enumerate(rules):
        by_column.setdefault(rule.column, []).append(i)
    masks: list[np.ndarray | None] = [None] * len(rules)
    for column, indices in by_column.items():
        table = column_of_day(column)
        for i in indices:
            masks[i] = _evaluate(rules[i], table)
    return _combine(rows, rules, masks)


def _evaluate(rule: RowRule, table: pa.Table) -> np.ndarray | None:
    import pyarrow as pa

    try:
        return rule.broken(table)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        # e.g. bounds Arrow cannot compare with the column: the suite still gates the day on it
        log.warning("quarantine cannot evaluate %s row by row (%s): the suite gates it", rule.name, exc)
        return None


def _combine(rows: int, rules: list[RowRule], masks: list[np.ndarray | None]) -> Verdict:
    """The verdict of each rule's mask (None: not evaluated), merged in the rules' order."""
    bad = np.zeros(rows, dtype=bool)
    broken: dict[str, np.ndarray] = {}
    for rule, mask in zip(rules, masks, strict=True):
        if mask is None:
            continue
        if mask.any():
            broken[rule.name] = broken[rule.name] | mask if rule.name in broken else mask
        bad |= mask
    counts = {name: int(mask.sum()) for name, mask in broken.items()}
    return Verdict(rows=rows, bad=bad, counts=counts, broken=broken)


def held_verdict(verdict: Verdict, index: np.ndarray) -> Verdict:
    """The verdict on the rows at `index` alone (the held-aside rows of a day read in parts)."""
    broken = {name: mask[index] for name, mask in verdict.broken.items()}
    return Verdict(rows=len(index), bad=verdict.bad[index], counts=verdict.counts, broken=broken)


def quarantine_rows(table: pa.Table, verdict: Verdict, entity_key: str, pii: PiiMask = NO_PII) -> pa.Table:
    """The held-aside rows as (<entity key> text, rule, row_json), PII columns hashed by `pii`."""
    import pyarrow as pa

    index = np.flatnonzero(verdict.bad)
    held = table.take(pa.array(index, type=pa.int64())).to_pylist()
    rows = [
        json.dumps({k: _shown(k, v, pii) for k, v in row.items()}, default=str, allow_nan=True)
        for row in held
    ]
    keys = [None if row.get(entity_key) is None else str(row[entity_key]) for row in held]
    return pa.table(
        {
            entity_key: pa.array(keys, pa.string()),
            "rule": pa.array(verdict.rules_of(index), pa.string()),
            "row_json": pa.array(rows, pa.string()),
        }
    )


def _shown(column: str, value: Any, pii: PiiMask) -> Any:
    if column in pii.columns:
        return pii.value(value)
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)  # JSON has no NaN or infinity: "nan", "inf" keep the evidence
    return value
