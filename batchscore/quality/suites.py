"""Suites and the data contract they declare.

A suite file is GX 1.x suite JSON (`{"name", "meta", "expectations": [{"type", "kwargs",
"severity"?}]}`) whose `meta.schema` declares the dataset's contract: every column's name
and Arrow type, in order. GX silently drops expectations it does not recognise, so loading
builds each one on its own and names the ones GX refused. The contract check compares a
partition's Arrow schema with it (missing, extra, renamed, retyped columns; NaN in floats).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchscore.errors import PermanentFailure
from batchscore.quality.pii import NO_PII, PiiMask

if TYPE_CHECKING:
    import pyarrow as pa
    from great_expectations.core import ExpectationSuite

log = logging.getLogger(__name__)

FLOAT_TYPES = frozenset({"halffloat", "float", "double"})


class SuiteError(PermanentFailure, ValueError):
    """A suite file is unreadable, declares no contract, or holds expectations GX refused."""


@dataclass(frozen=True)
class Suite:
    """A reviewed suite file: the declared contract and the GX suite, every expectation recognised."""

    path: Path
    schema: dict[str, str]
    gx: ExpectationSuite
    pii: PiiMask = field(default=NO_PII)
    """How values of the dataset's personal-data columns are shown in results and reports."""

    @property
    def expectations(self) -> list[Any]:
        return list(self.gx.expectations)


def load_suite(path: str | Path) -> Suite:
    """The suite in `path`; fails naming every expectation GX did not recognise or that is unsafe."""
    import great_expectations as gx

    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise SuiteError(f"expectation suite {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(f"expectation suite {path} is not valid JSON: {exc}") from None
    schema = (raw.get("meta") or {}).get("schema")
    if not isinstance(schema, dict) or not schema or not all(isinstance(v, str) for v in schema.values()):
        raise SuiteError(
            f"expectation suite {path} declares no contract: meta.schema must map each column to its "
            'Arrow type, e.g. {"customer_id": "int64", "score": "double"}'
        )
    declared = raw.get("expectations") or []
    if not declared:
        raise SuiteError(f"expectation suite {path} declares no expectations")
    problems = [p for i, entry in enumerate(declared) for p in _entry_problems(i, entry, schema)]
    if problems:
        recognised = len(declared) - sum(1 for p in problems if p.startswith("not recognised"))
        raise SuiteError(
            f"expectation suite {path}: GX recognised {recognised} of {len(declared)} expectations; "
            + "; ".join(problems)
        )
    suite = _quietly(lambda: gx.ExpectationSuite(name=raw.get("name") or path.stem, expectations=declared))
    if len(suite.expectations) != len(declared):  # a second guard in case GX drops one in bulk only
        raise SuiteError(
            f"expectation suite {path}: GX recognised {len(suite.expectations)} of {len(declared)} expectations"
        )
    return Suite(path=path, schema=dict(schema), gx=suite)


def _entry_problems(index: int, entry: Any, schema: dict[str, str]) -> list[str]:
    """Why one declared expectation is unusable: unknown to GX, bad arguments, or unsafe."""
    import great_expectations as gx

    if not isinstance(entry, dict) or "type" not in entry:
        return [f"not recognised: expectation #{index + 1} has no 'type'"]
    name = entry["type"]
    try:
        built = _quietly(lambda: gx.ExpectationSuite(name="probe", expectations=[entry]).expectations)
    except Exception as exc:  # GX raises for bad arguments (pydantic), drops unknown types
        return [f"not recognised: {name!r} (#{index + 1}): {_first_line(exc)}"]
    if not built:
        return [f"not recognised: {name!r} (#{index + 1}): {_rejection(entry)}"]
    kwargs = entry.get("kwargs") or {}
    column = kwargs.get("column")
    if column is not None and column not in schema:
        return [f"{name} (#{index + 1}) checks column {column!r}, which the contract does not declare"]
    if (
        name.endswith("_to_be_between")
        and column is not None
        and schema[column] in FLOAT_TYPES
        and (kwargs.get("min_value") is None or kwargs.get("max_value") is None)
    ):
        return [
            f"{name} on {column} (#{index + 1}) needs both min_value and max_value: "
            "an open range lets ±inf through"
        ]
    return []


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:199] + "…"


def _rejection(entry: dict[str, Any]) -> str:
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    try:
        config = ExpectationConfiguration(**entry)
        ExpectationSuite(name="probe")._build_expectation(config)
    except Exception as exc:
        return str(exc).split(":")[-1].strip()
    return "unknown reason"


def _quietly(build: Callable[[], Any]) -> Any:
    """Run a GX call with its logger muted (it logs a traceback for each dropped expectation)."""
    logger = logging.getLogger("great_expectations")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        return build()
    finally:
        logger.setLevel(level)


def arrow_type_name(data_type: pa.DataType) -> str:
    """The contract's spelling of an Arrow type (large and small strings are the same thing)."""
    name = str(data_type)
    return {"large_string": "string", "large_utf8": "string", "utf8": "string", "large_binary": "binary"}.get(
        name, name
    )


def contract_violations(declared: dict[str, str], schema: pa.Schema) -> list[str]:
    """A readable diff of `schema` against the declared contract: renamed, missing, extra, retyped."""
    found = {f.name: arrow_type_name(f.type) for f in schema}
    missing = [c for c in declared if c not in found]
    extra = [c for c in found if c not in declared]
    problems = []
    for column in list(missing):
        kind = declared[column]
        same_type_missing = [c for c in missing if declared[c] == kind]
        same_type_extra = [c for c in extra if found[c] == kind]
        if len(same_type_missing) == 1 and len(same_type_extra) == 1:
            new = same_type_extra[0]
            problems.append(
                f"renamed? column {column} ({kind}) is missing and {new} ({kind}) is not declared: "
                f"was {column} renamed to {new}?"
            )
            missing.remove(column)
            extra.remove(new)
    problems += [f"missing column {c} ({declared[c]})" for c in missing]
    problems += [f"extra column {c} ({found[c]}) is not declared" for c in extra]
    problems += [
        f"retyped column {c}: declared {declared[c]}, found {found[c]}"
        for c in declared
        if c in found and found[c] != declared[c]
    ]
    return problems


def nan_violations(nan_counts: dict[str, int]) -> list[str]:
    """NaN is not a value: missing values are spelled null, which the suite's tolerances govern."""
    return [
        f"NaN in float column {column}: {count} row(s); write null for a missing value"
        for column, count in nan_counts.items()
        if count
    ]


def arrow_nan_counts(table: pa.Table) -> dict[str, int]:
    import pyarrow.compute as pc
    import pyarrow.types as pat

    return {
        f.name: int(pc.sum(pc.is_nan(table[f.name])).as_py() or 0)
        for f in table.schema
        if pat.is_floating(f.type)
    }
