"""Writing the outcome tables (`model_performance`, `score_stability`) on both warehouses.

`OutcomeWrites` is a base of every `Warehouse`: each write deletes the rows of its key and
inserts the new ones in one transaction, so a rerun, or labels landing late for a day already
evaluated, leaves exactly one set. On DuckDB a conflicting writer retries the
whole transaction (as publishes do); on PostgreSQL writers of one key queue on an advisory lock.
Each pipeline reads its own rows through the views `model_performance_<pipeline>` and
`score_stability_<pipeline>`, created on its first write (the pipeline name is validated).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import numpy as np

from batchscore.storage.warehouse.contract import now, validate_identifier

T = TypeVar("T")

PERFORMANCE_COLUMNS = (
    "pipeline",
    "run_date",
    "model_name",
    "model_version",
    "role",
    "kind",
    "segment",
    "metric",
    "value",
    "lower",
    "upper",
    "row_count",
    "run_id",
    "recorded_at",
)
STABILITY_COLUMNS = (
    "pipeline",
    "run_date",
    "model_version",
    "previous_run_date",
    "previous_model_version",
    "score_psi",
    "rank_correlation",
    "decision_threshold",
    "decision_flip_share",
    "shared_entities",
    "new_entities",
    "gone_entities",
    "run_id",
    "recorded_at",
)
ROLES = ("champion", "shadow")
KINDS = ("realized", "estimated")


def outcome_views(pipeline: str) -> list[tuple[str, str]]:
    """(view name, SELECT) of one pipeline's outcome views; the name is a validated identifier,
    so it is safe as a literal."""
    name = validate_identifier(pipeline, "pipeline name")
    return [
        (
            validate_identifier(f"model_performance_{name}"),
            f"SELECT * FROM model_performance WHERE pipeline = '{name}'",
        ),
        (
            validate_identifier(f"score_stability_{name}"),
            f"SELECT * FROM score_stability WHERE pipeline = '{name}'",
        ),
    ]


@dataclass(frozen=True)
class Executor:
    """Runs `?`-placeholder SQL on one connection inside the caller's transaction."""

    execute: Callable[[str, list[Any]], Any]
    executemany: Callable[[str, list[list[Any]]], Any]


class OutcomeWrites:
    """The outcome writes every warehouse shares (see the module docstring); the backend runs
    each in one transaction of its own (`_outcome_write`)."""

    def _outcome_write(self, pipeline: str, lock: tuple[object, ...], write: Callable[[Executor], T]) -> T:
        raise NotImplementedError

    def replace_performance(
        self, pipeline: str, run_date: date, role: str, kind: str, run_id: str, rows: list[dict[str, Any]]
    ) -> int:
        """Replace every `model_performance` row of (pipeline, run_date, role, kind) with `rows`
        (each: model_name, model_version, segment, metric, value, lower, upper, row_count);
        returns how many rows were replaced."""
        if role not in ROLES or kind not in KINDS:
            raise ValueError(f"role must be one of {ROLES} and kind one of {KINDS}, got {role!r}, {kind!r}")
        recorded = now()
        values = [
            [
                pipeline,
                run_date,
                r["model_name"],
                int(r["model_version"]),
                role,
                kind,
                r["segment"],
                r["metric"],
                _number(r.get("value")),
                _number(r.get("lower")),
                _number(r.get("upper")),
                int(r["row_count"]),
                run_id,
                recorded,
            ]
            for r in rows
        ]
        key = [pipeline, run_date, role, kind]

        def write(x: Executor) -> int:
            deleted = _count(
                x.execute(
                    "DELETE FROM model_performance WHERE pipeline = ? AND run_date = ? AND role = ? AND kind = ?",
                    key,
                )
            )
            if values:
                x.executemany(_insert("model_performance", PERFORMANCE_COLUMNS), values)
            return deleted

        return self._outcome_write(pipeline, ("model_performance", *key), write)

    def replace_stability(self, pipeline: str, run_date: date, run_id: str, row: dict[str, Any]) -> None:
        """Replace the `score_stability` row of (pipeline, run_date)."""
        values = [
            pipeline,
            run_date,
            int(row["model_version"]),
            row["previous_run_date"],
            int(row["previous_model_version"]),
            _number(row.get("score_psi")),
            _number(row.get("rank_correlation")),
            _number(row.get("decision_threshold")),
            _number(row.get("decision_flip_share")),
            int(row["shared_entities"]),
            int(row["new_entities"]),
            int(row["gone_entities"]),
            run_id,
            now(),
        ]

        def write(x: Executor) -> None:
            x.execute("DELETE FROM score_stability WHERE pipeline = ? AND run_date = ?", [pipeline, run_date])
            x.execute(_insert("score_stability", STABILITY_COLUMNS), values)

        self._outcome_write(pipeline, ("score_stability", pipeline, run_date), write)


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _number(value: Any) -> float | None:
    """A finite float, or None (NULL) for missing, NaN or infinite values."""
    if value is None:
        return None
    number = float(value)
    return number if np.isfinite(number) else None


def _count(result: Any) -> int:
    """Rows a DELETE removed: DuckDB returns them as a row, psycopg as the cursor's rowcount."""
    if hasattr(result, "rowcount") and result.rowcount is not None and result.rowcount >= 0:
        return int(result.rowcount)
    row = result.fetchone()
    return int(row[0]) if row else 0
