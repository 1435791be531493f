"""PostgreSQL's quarantine table: created in its own short transaction (a DDL lock), its day's
rows replaced by COPY in the publish transaction."""

from __future__ import annotations

from typing import Any

from batchscore.storage.warehouse.contract import ScoresSlice
from batchscore.storage.warehouse.quarantine_store import QuarantineSlice, quarantine_ddl


def ensure_pg_quarantine(warehouse: Any, held: QuarantineSlice | None, entity_key: str) -> None:
    """Create the PostgreSQL table if missing, in its own short transaction (DDL lock)."""
    from psycopg import sql

    from batchscore.storage.warehouse.postgres.sql import lock_key

    if held is None or held.rows is None:
        return
    with warehouse.connect() as con:
        con.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key("ddl", warehouse.schema, held.table)])
        table = warehouse.ident(held.table).as_string(con)
        key = warehouse.ident(entity_key).as_string(con)
        con.execute(sql.SQL(quarantine_ddl(table, key, "TEXT", "TIMESTAMPTZ")))


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
