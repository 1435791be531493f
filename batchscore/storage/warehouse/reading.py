"""Slice-consistent reads of published scores, on DuckDB and on PostgreSQL.

A lookup first resolves the pipeline's scores table (`published_slices`, shadow tables left
out), then, in ONE read-only transaction, picks the slice (latest run date on or before
`as_of`, then the highest model version of that day) and reads the requested keys of exactly
that (run date, model version). A concurrent republish is seen entirely or not at all:
DuckDB's transaction is a snapshot; on PostgreSQL the transaction first takes ACCESS SHARE
on the scores table (before its REPEATABLE READ snapshot starts), so a swap that drops the
old partition either finished before the snapshot or waits for the read to end.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from batchscore.storage.warehouse.multiclass import class_columns, stored_classes

LATEST = date(9999, 12, 31)
TABLE_TTL_S = 5.0
SLICE_COLUMNS = "scores_table, pipeline, run_date, model_version, model_name, run_id, row_count, published_at"
MAIN_TABLES = "substr(scores_table, 1, 7) <> 'shadow_'"
COLUMNS_SQL = """SELECT column_name, data_type FROM information_schema.columns
    WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position"""
PICK_SQL = f"""SELECT {SLICE_COLUMNS} FROM published_slices
    WHERE pipeline = ? AND scores_table = ? AND run_date <= ?
    ORDER BY run_date DESC, model_version DESC LIMIT 1"""


class WarehouseDown(RuntimeError):
    """The warehouse cannot be reached (or its file is gone); the request may be retried."""


class UnknownPipeline(LookupError):
    """No slice of this pipeline was ever published (or none on or before the day asked)."""


@dataclass(frozen=True)
class SliceInfo:
    """One published slice: what every score in a response comes from."""

    scores_table: str
    pipeline: str
    run_date: date
    model_version: int
    model_name: str
    run_id: str
    row_count: int
    published_at: datetime

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> SliceInfo:
        published = row[7] if row[7].tzinfo else row[7].replace(tzinfo=UTC)
        return cls(
            str(row[0]), str(row[1]), row[2], int(row[3]), str(row[4]), str(row[5]), int(row[6]), published
        )

    @property
    def etag(self) -> str:
        """A strong ETag naming the slice: any republish (new run id or time) changes it."""
        identity = "|".join(
            [
                self.scores_table,
                str(self.run_date),
                str(self.model_version),
                self.run_id,
                self.published_at.isoformat(),
            ]
        )
        return '"' + hashlib.sha256(identity.encode()).hexdigest()[:32] + '"'

    def describe(self) -> dict[str, Any]:
        age_h = (datetime.now(UTC) - self.published_at).total_seconds() / 3600
        return {
            "pipeline": self.pipeline,
            "scores_table": self.scores_table,
            "run_date": self.run_date.isoformat(),
            "model_name": self.model_name,
            "model_version": self.model_version,
            "run_id": self.run_id,
            "row_count": self.row_count,
            "published_at": self.published_at.isoformat(),
            "freshness_hours": round(age_h, 3),
        }


@dataclass(frozen=True)
class TableShape:
    """A scores table's entity key (name, `integer` or `string`), its multiclass columns and the
    context columns of its latest output contract version."""

    entity_key: str
    key_kind: str
    extra: tuple[str, ...]
    context: tuple[str, ...] = ()


def shape_of(columns: Sequence[tuple[str, str]], context: Sequence[str] = ()) -> TableShape:
    """The shape from (column name, SQL type) in order; the entity key is the first column."""
    names = [name for name, _ in columns]
    key, key_type = columns[0]
    kind = "integer" if any(word in key_type.upper() for word in ("INT", "BIGINT")) else "string"
    return TableShape(key, kind, tuple(class_columns(stored_classes(names))), tuple(context))


def contract_columns(query: Query, table: str) -> list[str]:
    """The context columns of the table's latest output contract version (none before migration 8)."""
    exists = query(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND table_name = 'output_contracts'",
        [],
    )
    if not exists[0][0]:
        return []
    latest = query(
        "SELECT columns FROM output_contracts WHERE scores_table = ? ORDER BY version DESC LIMIT 1", [table]
    )
    return [column["name"] for column in json.loads(latest[0][0])] if latest else []


def json_ready(value: Any) -> Any:
    """A context value as JSON has it (dates as ISO strings)."""
    return value.isoformat() if isinstance(value, date) else value


def latest_per_pipeline(rows: Sequence[Sequence[Any]]) -> dict[str, SliceInfo]:
    """Each pipeline's latest slice: latest run date, then highest model version, then latest publish."""
    best: dict[str, SliceInfo] = {}
    for row in rows:
        info = SliceInfo.from_row(row)
        rank = (info.run_date, info.model_version, info.published_at)
        held = best.get(info.pipeline)
        if held is None or rank > (held.run_date, held.model_version, held.published_at):
            best[info.pipeline] = info
    return best


Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


class ScoresReader:
    """What both warehouses share: table resolution (cached briefly) and the lookup's queries."""

    dialect = "abstract"

    def __init__(self) -> None:
        self._tables: dict[str, tuple[float, str]] = {}
        self._shapes: dict[str, TableShape] = {}
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self, lock_table: str | None = None) -> Iterator[Query]:
        raise NotImplementedError
        yield  # pragma: no cover

    def table_columns(self, query: Query, table: str) -> list[tuple[str, str]]:
        raise NotImplementedError

    def rows_sql(self, table: str, shape: TableShape) -> str:
        raise NotImplementedError

    def ping(self) -> None:
        with self.transaction() as query:
            query("SELECT count(*) FROM published_slices", [])

    def pipelines(self) -> dict[str, SliceInfo]:
        with self.transaction() as query:
            rows = query(f"SELECT {SLICE_COLUMNS} FROM published_slices WHERE {MAIN_TABLES}", [])
        return latest_per_pipeline(rows)

    def table_for(self, pipeline: str) -> tuple[str, TableShape]:
        """The pipeline's scores table and its shape; UnknownPipeline when nothing was published."""
        with self._lock:
            cached = self._tables.get(pipeline)
        if cached is None or time.monotonic() - cached[0] > TABLE_TTL_S:
            latest = self.pipelines().get(pipeline)
            if latest is None:
                raise UnknownPipeline(f"no scores published for pipeline {pipeline!r}")
            with self._lock:
                self._tables[pipeline] = cached = (time.monotonic(), latest.scores_table)
                self._shapes.pop(latest.scores_table, None)  # a new contract version may add columns
        table = cached[1]
        if table not in self._shapes:
            with self.transaction() as query:
                shape = shape_of(self.table_columns(query, table), contract_columns(query, table))
            with self._lock:
                self._shapes[table] = shape
        return table, self._shapes[table]

    def lookup(
        self, pipeline: str, keys: Sequence[int | str], as_of: date | None = None
    ) -> tuple[SliceInfo, TableShape, list[dict[str, Any]]]:
        """The rows of `keys` (found ones only) from ONE slice, picked and read in one transaction."""
        table, shape = self.table_for(pipeline)
        with self.transaction(lock_table=table) as query:
            picked = query(PICK_SQL, [pipeline, table, as_of or LATEST])
            if not picked:
                raise UnknownPipeline(f"no scores of pipeline {pipeline!r} published on or before {as_of}")
            info = SliceInfo.from_row(picked[0])
            rows = query(self.rows_sql(table, shape), [info.run_date, info.model_version, list(keys)])
        names = ["key", "score", *shape.extra, *shape.context]
        return info, shape, [dict(zip(names, map(json_ready, row), strict=True)) for row in rows]
