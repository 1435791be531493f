"""DuckDB's side of the output contract: the `<table>` view over the narrow rows, and applying
a contract version in one transaction (see `output_contract.py` for the contract itself)."""

from __future__ import annotations

from typing import Any

from batchscore.storage.warehouse.contract import ScoresSlice, analyst_views, quoted, validate_identifier
from batchscore.storage.warehouse.multiclass import select_sql
from batchscore.storage.warehouse.output_contract import Columns, ContractState, Run, apply_contract, names_of


def duckdb_table_view(
    rows_table: str, target_table: str, entity_key: str, classes: tuple[str, ...], stored: Columns
) -> str:
    """The SELECT of DuckDB's `<table>` view: the narrow rows with their slice's constants and
    every stored context column."""
    k = quoted(entity_key)
    context = "".join(f", r.{quoted(name)}" for name, _ in stored)
    return f"""SELECT r.{k}, r.run_date, s.pipeline, s.model_name, r.model_version, r.score
                   {select_sql(classes, "r.")}, s.run_id{context}
            FROM {rows_table} r JOIN published_slices s
              ON s.scores_table = '{validate_identifier(target_table)}' AND s.run_date = r.run_date
             AND s.model_version = r.model_version"""


def duckdb_run(con: Any) -> Run:
    return lambda statement, params: list(con.execute(statement, list(params)).fetchall())


def duckdb_views(
    con: Any, rows_table: str, table: str, entity_key: str, probability: bool, classes: tuple[str, ...]
) -> list[tuple[str, str]]:
    """(name, SELECT) of DuckDB's `<table>` view and the analyst views, with the context columns
    of the table's stored contract (every stored one in `<table>`, the latest's in `latest_`)."""
    state = ContractState.read(duckdb_run(con), table)
    return [
        (table, duckdb_table_view(rows_table, table, entity_key, tuple(classes), state.stored)),
        *analyst_views(table, entity_key, quoted, probability, tuple(classes), names_of(state.latest)),
    ]


def apply_duckdb_contract(
    con: Any, rows_table: str, target: ScoresSlice, columns: Columns
) -> tuple[int, Columns]:
    """`apply_contract` in one DuckDB transaction; the `<table>` view gains every stored column."""

    def replace_table_view(stored: Columns) -> None:
        select = duckdb_table_view(rows_table, target.table, target.entity_key, target.classes, stored)
        con.execute(f"CREATE OR REPLACE VIEW {quoted(target.table)} AS {select}")

    con.execute("BEGIN")
    try:
        version = apply_contract(
            duckdb_run(con), "duckdb", rows_table, target, columns, quoted, replace_table_view
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return version
