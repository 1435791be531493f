"""The multiclass shape of a scores table: `predicted_class` and one `p_<class>` per class.

A multiclass scores partition has, after the binary columns, the top class
(`predicted_class`, a string, one of the classes) and one probability column per class, in
the classes' order; `score` is the top class's probability. Both warehouses store those
columns after `score`. Everything here is pure (names, SQL fragments, the audit's extra
checks), so the contract and both stores share it without importing each other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

CLASS_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,40}$")
PREDICTED = "predicted_class"
SUM_TOLERANCE = 1e-3
TOP_TOLERANCE = 1e-9


def check_class_names(classes: Sequence[str]) -> str | None:
    """Why these class names cannot name columns, or None when they can."""
    bad = [c for c in classes if not isinstance(c, str) or not CLASS_NAME.match(c)]
    if bad:
        return f"invalid class names {bad}: use 1-41 lower-case letters, digits and _"
    if len(set(classes)) != len(classes):
        return f"class names repeat: {list(classes)}"
    return None


def probability_columns(classes: Sequence[str]) -> list[str]:
    return [f"p_{c}" for c in classes]


def class_columns(classes: Sequence[str]) -> list[str]:
    """The columns a multiclass partition adds after the binary ones (none without classes)."""
    return [PREDICTED, *probability_columns(classes)] if classes else []


def columns_sql(classes: Sequence[str], text_type: str) -> str:
    """`, predicted_class <text> NOT NULL, "p_<class>" DOUBLE PRECISION NOT NULL, ...` (empty without classes)."""
    if not classes:
        return ""
    columns = [f'"{PREDICTED}" {text_type} NOT NULL'] + [
        f'"{name}" DOUBLE PRECISION NOT NULL' for name in probability_columns(classes)
    ]
    return ", " + ", ".join(columns)


def select_sql(classes: Sequence[str], prefix: str = "") -> str:
    """`, <prefix>"predicted_class", <prefix>"p_<class>", ...` for a column list (empty without classes)."""
    return "".join(f', {prefix}"{name}"' for name in class_columns(classes))


def share_columns_sql(classes: Sequence[str]) -> str:
    """One `share_<class>` aggregate per class: the share of rows predicted as that class."""
    return ",\n               ".join(
        f"CAST(avg(CASE WHEN {PREDICTED} = '{c}' THEN 1.0 ELSE 0.0 END) AS DOUBLE PRECISION) AS \"share_{c}\""
        for c in classes
    )


def range_check_sql(classes: Sequence[str]) -> str:
    """A CHECK expression: each probability in [0, 1] and the predicted class one of the classes."""
    ranges = [f'"{name}" >= 0 AND "{name}" <= 1' for name in probability_columns(classes)]
    listed = ", ".join(f"'{c}'" for c in classes)
    return " AND ".join([*ranges, f"{PREDICTED} IN ({listed})"])


def stored_classes(columns: Sequence[str]) -> tuple[str, ...]:
    """The classes a stored table was created for, from its columns in order (() when not multiclass)."""
    if PREDICTED not in columns:
        return ()
    found = []
    for name in columns[list(columns).index(PREDICTED) + 1 :]:
        if not name.startswith("p_"):
            break
        found.append(name[2:])
    return tuple(found)


def describe_classes(classes: Sequence[str]) -> str:
    return f"multiclass scores of classes ({', '.join(classes)})" if classes else "scores without classes"


def audit_multiclass(scores: pa.Table, classes: Sequence[str]) -> list[str]:
    """The multiclass checks of the audit, each failure as one message (counts, as the others)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = [c for c in class_columns(classes) if c not in scores.column_names]
    if missing:
        return [f"missing columns {', '.join(missing)}"]
    failures = []
    predicted = scores.column(PREDICTED)
    if predicted.null_count:
        failures.append(f"{predicted.null_count} null predicted classes")
    if not (pa.types.is_string(predicted.type) or pa.types.is_large_string(predicted.type)):
        failures.append(f"predicted_class is {predicted.type}, not a string")
    else:
        listed = pc.is_in(predicted, value_set=pa.array(list(classes), predicted.type))
        outside = scores.num_rows - predicted.null_count - int(pc.sum(listed).as_py() or 0)
        if outside:
            failures.append(f"{outside} predicted classes not in ({', '.join(classes)})")
    matrix = np.empty((scores.num_rows, len(classes)), np.float64)
    for j, name in enumerate(probability_columns(classes)):
        column = scores.column(name)
        if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
            return [*failures, f"{name} is {column.type}, not a double"]
        if column.null_count:
            failures.append(f"{column.null_count} null {name}")
        matrix[:, j] = column.cast(pa.float64()).fill_null(np.nan).to_numpy()
        with np.errstate(invalid="ignore"):
            outside = int(np.count_nonzero(~((matrix[:, j] >= 0.0) & (matrix[:, j] <= 1.0))))
        if outside:
            failures.append(f"{outside} {name} outside [0, 1] or NaN")
    return failures + _row_checks(scores, matrix)


def _row_checks(scores: pa.Table, matrix: np.ndarray) -> list[str]:
    """Each row's probabilities sum to 1, and its score is the top one."""
    import pyarrow as pa

    failures = []
    with np.errstate(invalid="ignore"):
        unsummed = int(np.count_nonzero(~(np.abs(matrix.sum(axis=1) - 1.0) <= SUM_TOLERANCE)))
        if unsummed:
            failures.append(f"{unsummed} rows whose probabilities do not sum to 1 (within {SUM_TOLERANCE:g})")
        score = scores.column("score").cast(pa.float64()).fill_null(np.nan).to_numpy()
        top = matrix.max(axis=1) if matrix.shape[1] else np.full(len(score), np.nan)
        off = int(np.count_nonzero(~(np.abs(score - top) <= TOP_TOLERANCE)))
    if off:
        failures.append(f"{off} scores not the top class's probability")
    return failures
