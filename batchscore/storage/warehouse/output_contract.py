"""The versioned output contract: which context columns each scores table publishes.

A pipeline may publish chosen raw input columns beside its scores (`output.context_columns`).
The list, with each column's kind, is the table's output contract, recorded in
`output_contracts` (migration 8): version 1 at the table's first publish under this contract,
version N+1 whenever the list changes. The stored table only grows: a new column is added
(rows of earlier slices hold NULL), a dropped one stays (NULL from then on), a changed kind is
refused (publish it under a new name). Each version gets its view `<table>_v<N>` (the score
columns and that version's context columns, never changed), so queries written against a
version keep working after the next one appears; `latest_<table>` follows the latest version.
`<table>` itself holds every context column any version published.

The SQL is portable (DuckDB and PostgreSQL); each store runs it through `Run` in one
transaction under its DDL lock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batchscore.errors import PermanentFailure
from batchscore.storage.warehouse.contract import (
    AuditFailed,
    ScoresSlice,
    analyst_views,
    duplicate_keys,
    now,
    quoted,
    validate_identifier,
)
from batchscore.storage.warehouse.multiclass import PREDICTED, select_sql
from batchscore.storage.warehouse.output_versions import KIND_SQL

if TYPE_CHECKING:
    import pyarrow as pa

RESERVED = frozenset({"score", "run_date", "pipeline", "model_name", "model_version", "run_id", PREDICTED})

Run = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
"""Executes one statement (`?` placeholders) in the caller's transaction; returns a SELECT's rows."""

Columns = tuple[tuple[str, str], ...]
"""(name, kind) of each context column, in publish order."""


class ContractChange(PermanentFailure, ValueError):
    """The configured context columns cannot become the table's next contract version."""


def kind_of(arrow_type: pa.DataType) -> str | None:
    """The contract kind of an Arrow type, or None when context columns of that type are refused."""
    import pyarrow as pa

    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type):
        return "floating"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_date32(arrow_type):
        return "date"
    return None


def context_columns(context: pa.Table, entity_key: str) -> Columns:
    """(name, kind) of every column of `context` but the entity key; unsupported types are refused."""
    columns, refused = [], []
    for field in context.schema:
        if field.name == entity_key:
            continue
        validate_identifier(field.name, "context column")
        if field.name in RESERVED or field.name.startswith("p_"):
            raise ContractChange(f"context column {field.name} would shadow a published column")
        kind = kind_of(field.type)
        if kind is None:
            refused.append(f"{field.name} ({field.type})")
        columns.append((field.name, kind or ""))
    if refused:
        raise ContractChange(
            f"context columns {', '.join(refused)} have unsupported types; publish integer, floating, "
            "string, boolean or date columns (cast upstream, or leave them out of output.context_columns)"
        )
    return tuple(columns)


def join_context(scores: pa.Table, context: pa.Table, target: ScoresSlice) -> pa.Table:
    """The scores with their context columns appended, matched by entity key.

    Every scored key must find exactly one context row: a missing or repeated key fails the
    audit (nothing is published), so no score is published with another entity's context.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    key = target.entity_key
    if key not in context.column_names:
        raise AuditFailed(f"context rows lack the entity key {key}; nothing was published")
    keys = scores.column(key)
    try:
        raw_keys = context.column(key).cast(keys.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise AuditFailed(
            f"raw {key} is {context.schema.field(key).type}, the scores' is {keys.type}: {exc}; nothing was published"
        ) from exc
    failures = []
    repeated = duplicate_keys(raw_keys)
    if repeated:
        failures.append(f"{repeated} entity keys repeat in the raw partition (context is ambiguous)")
    found = pc.is_in(keys, value_set=raw_keys.combine_chunks())
    missing = scores.num_rows - int(pc.sum(found).as_py() or 0)
    if missing:
        failures.append(f"{missing} scored keys have no raw row for their context columns")
    if failures:
        raise AuditFailed(
            f"context for {target.describe()} failed the audit, nothing was published: {'; '.join(failures)}"
        )
    renamed = context.set_column(context.column_names.index(key), key, raw_keys)
    names = [n for n in context.column_names if n != key]
    joined = scores.join(renamed.select([key, *names]), keys=key, join_type="left outer")
    return joined.select([*scores.column_names, *names]).combine_chunks()


@dataclass(frozen=True)
class ContractState:
    """A table's contract versions as stored: (version, columns) in version order."""

    versions: tuple[tuple[int, Columns], ...]

    @classmethod
    def read(cls, run: Run, table: str) -> ContractState:
        rows = run(
            "SELECT version, columns FROM output_contracts WHERE scores_table = ? ORDER BY version", [table]
        )
        return cls(
            tuple((int(v), tuple((c["name"], c["kind"]) for c in json.loads(text))) for v, text in rows)
        )

    @property
    def latest(self) -> Columns:
        return self.versions[-1][1] if self.versions else ()

    @property
    def stored(self) -> Columns:
        """Every column any version published, in the order they were first added."""
        seen: dict[str, str] = {}
        for _, columns in self.versions:
            for name, kind in columns:
                seen.setdefault(name, kind)
        return tuple(seen.items())

    def check(self, table: str, columns: Columns) -> None:
        """A name keeps its kind across versions; a changed kind is refused."""
        stored = dict(self.stored)
        changed = [f"{n} is {stored[n]}, now {k}" for n, k in columns if n in stored and stored[n] != k]
        if changed:
            raise ContractChange(
                f"table {table}'s output contract: {'; '.join(changed)}; a context column keeps its type "
                "across versions, publish the new type under a new name. Nothing was published"
            )


def version_view_sql(
    table: str,
    entity_key: str,
    classes: tuple[str, ...],
    columns: Columns,
    quote: Callable[[str], str] = quoted,
) -> str:
    """The SELECT of `<table>_v<N>`: the score columns and that version's context columns."""
    context = "".join(f", {quote(validate_identifier(name))}" for name, _ in columns)
    return (
        f"SELECT {quote(entity_key)}, run_date, pipeline, model_name, model_version, score"
        f"{select_sql(classes)}, run_id{context} FROM {quote(table)}"
    )


def version_view(table: str, version: int) -> str:
    return validate_identifier(f"{table}_v{version}", "versioned view name")


def apply_contract(
    run: Run,
    dialect: str,
    stored_table: str,
    target: ScoresSlice,
    columns: Columns,
    quote: Callable[[str], str] = quoted,
    replace_table_view: Callable[[Columns], None] | None = None,
) -> tuple[int, Columns]:
    """Record `columns` as the table's next contract version when they differ from the latest;
    returns the version these scores are published under and every stored context column.

    On a change: the new columns are added to `stored_table` (nullable), the version is
    recorded, its view `<table>_v<N>` created, `replace_table_view` (DuckDB's `<table>` view)
    called with every stored column, and `latest_<table>` recreated with the new columns.
    Runs in the caller's transaction, which must hold the table's DDL lock.
    """
    table = target.table
    state = ContractState.read(run, table)
    state.check(table, columns)
    if state.versions and state.latest == columns:
        return state.versions[-1][0], state.stored
    version = state.versions[-1][0] + 1 if state.versions else 1
    known = dict(state.stored)
    for name, kind in columns:
        if name not in known:
            run(f"ALTER TABLE {stored_table} ADD COLUMN {quote(name)} {KIND_SQL[kind][dialect]}", [])
    described = json.dumps([{"name": n, "kind": k} for n, k in columns])
    run("INSERT INTO output_contracts VALUES (?, ?, ?, ?)", [table, version, described, now()])
    everything = ContractState((*state.versions, (version, columns))).stored
    if replace_table_view is not None:
        replace_table_view(everything)
    select = version_view_sql(table, target.entity_key, target.classes, columns, quote)
    run(f"CREATE OR REPLACE VIEW {quote(version_view(table, version))} AS {select}", [])
    if names_of(columns) != names_of(
        state.latest
    ):  # a table's first version, without context, keeps its view
        latest, select = analyst_views(
            table, target.entity_key, quote, target.probability, target.classes, names_of(columns)
        )[0]
        run(f"DROP VIEW IF EXISTS {quote(latest)}", [])
        run(f"CREATE VIEW {quote(latest)} AS {select}", [])
    return version, everything


def context_sql(columns: Columns, dialect: str, quote: Callable[[str], str] = quoted) -> str:
    """`, "name" TYPE, ...` of stored context columns, for a CREATE TABLE (empty without any)."""
    return "".join(f", {quote(name)} {KIND_SQL[kind][dialect]}" for name, kind in columns)


def names_of(columns: Columns) -> tuple[str, ...]:
    return tuple(name for name, _ in columns)


def with_context(scores: pa.Table, target: ScoresSlice, context: pa.Table | None) -> tuple[pa.Table, Columns]:
    """The scores with their context columns joined (unchanged without `context`), and those columns."""
    if context is None:
        return scores, ()
    columns = context_columns(context, target.entity_key)
    return join_context(scores, context, target), columns
