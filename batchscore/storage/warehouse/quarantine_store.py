"""`quarantine_<pipeline>`: the raw rows a day's gate held aside, published with the day's scores.

One row per held-aside input row: `run_date`, the entity key (as text: a null or duplicated
key is what some rows broke), `rule` (every rule the row broke, `; `-joined), `row_json` (the
whole row, PII columns hashed), `run_id` (the run that published it) and `quarantined_at`.
The champion's publish replaces the day's rows in the transaction that replaces its scores,
so a rerun replaces both or neither; a pipeline whose quarantine was turned off has the day's
old rows removed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batchscore.storage.warehouse.contract import ScoresSlice, quoted, validate_identifier

if TYPE_CHECKING:
    import pyarrow as pa

COLUMNS = ("rule", "row_json")


@dataclass(frozen=True)
class QuarantineSlice:
    """The day's held-aside rows (`rows`: key, rule, row_json; None: the quarantine is off)."""

    table: str
    rows: pa.Table | None

    def __post_init__(self) -> None:
        validate_identifier(self.table, "quarantine table name")


def _ddl(table: str, key: str, text: str, stamp: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (run_date DATE NOT NULL, {key} {text}, rule {text} NOT NULL, "
        f"row_json {text} NOT NULL, run_id {text} NOT NULL, quarantined_at {stamp} NOT NULL)"
    )


def replace_duckdb_quarantine(con: Any, held: QuarantineSlice | None, target: ScoresSlice, at: Any) -> None:
    """In the swap's transaction: the day's old quarantined rows out, these in (count checked)."""
    if held is None:
        return
    exists = con.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?", [held.table]
    ).fetchone()
    if exists is None and held.rows is None:
        return
    table, k = quoted(held.table), quoted(target.entity_key)
    con.execute(_ddl(table, k, "VARCHAR", "TIMESTAMP"))
    con.execute(f"DELETE FROM {table} WHERE run_date = ?", [target.run_date])
    if held.rows is None or held.rows.num_rows == 0:
        return
    con.register("held_rows", held.rows)
    inserted = con.execute(
        f"""INSERT INTO {table} SELECT CAST(? AS DATE), {k}, rule, row_json, ?, CAST(? AS TIMESTAMP)
            FROM held_rows""",
        [target.run_date, target.run_id, at],
    ).fetchone()[0]
    con.unregister("held_rows")
    if inserted != held.rows.num_rows:
        raise RuntimeError(
            f"inserted {inserted} quarantined rows, expected {held.rows.num_rows}; rolled back"
        )


def ensure_pg_quarantine(warehouse: Any, held: QuarantineSlice | None, entity_key: str) -> None:
    """Create the PostgreSQL table if missing, in its own short transaction (DDL lock)."""
    from psycopg import sql

    from batchscore.storage.warehouse.pg_sql import lock_key

    if held is None or held.rows is None:
        return
    with warehouse.connect() as con:
        con.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key("ddl", warehouse.schema, held.table)])
        table = warehouse.ident(held.table).as_string(con)
        key = warehouse.ident(entity_key).as_string(con)
        con.execute(sql.SQL(_ddl(table, key, "TEXT", "TIMESTAMPTZ")))


def replace_pg_quarantine(
    con: Any, warehouse: Any, held: QuarantineSlice | None, target: ScoresSlice
) -> None:
    """In the publish transaction: delete the day's rows, COPY these in (count checked)."""
    if held is None:
        return
    table = warehouse.ident(held.table).as_string(con)
    exists = con.execute("SELECT to_regclass(%s)", [f"{warehouse.schema}.{held.table}"]).fetchone()[0]
    if exists is None:
        return
    con.execute(f"DELETE FROM {table} WHERE run_date = %s", [target.run_date])
    if held.rows is None or held.rows.num_rows == 0:
        return
    key = warehouse.ident(target.entity_key).as_string(con)
    columns = held.rows.to_pydict()
    with con.cursor() as cur:
        copy_sql = f"COPY {table} (run_date, {key}, rule, row_json, run_id, quarantined_at) FROM STDIN"
        with cur.copy(copy_sql) as copy:
            for k, rule, row in zip(
                columns[target.entity_key], columns["rule"], columns["row_json"], strict=True
            ):
                copy.write_row((target.run_date, k, rule, row, target.run_id, "now"))
    count = con.execute(f"SELECT count(*) FROM {table} WHERE run_date = %s", [target.run_date]).fetchone()[0]
    if count != held.rows.num_rows:
        raise RuntimeError(f"copied {count} quarantined rows, expected {held.rows.num_rows}; rolled back")
