"""DuckDB's companions of a slice, written in the swap's transaction: its reason codes and the
day's quarantined rows.

Reasons are stored in `slice_rows.score_reasons_<pipeline>` behind a view joined to
`published_slices` (only published slices show); quarantined rows in `quarantine_<pipeline>`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchscore.storage.warehouse.contract import ScoresSlice, quoted, validate_identifier
from batchscore.storage.warehouse.duckdb.tables import ROWS_SCHEMA
from batchscore.storage.warehouse.quarantine_store import QuarantineSlice, quarantine_ddl
from batchscore.storage.warehouse.reasons import ReasonsSlice

if TYPE_CHECKING:
    import pyarrow as pa


def ensure_duckdb_reasons(con: Any, reasons: ReasonsSlice, target: ScoresSlice, key_sql: str) -> None:
    """Create the rows table and the `score_reasons_<pipeline>` view if missing (caller's transaction)."""
    stored, k = f"{ROWS_SCHEMA}.{quoted(reasons.table)}", quoted(target.entity_key)
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {stored} ({k} {key_sql} NOT NULL, run_date DATE NOT NULL,
            model_version INTEGER NOT NULL, "rank" SMALLINT NOT NULL, feature VARCHAR NOT NULL,
            "value" DOUBLE PRECISION, contribution DOUBLE PRECISION NOT NULL)"""
    )
    con.execute(
        f"""CREATE OR REPLACE VIEW {quoted(reasons.table)} AS
            SELECT r.{k}, r.run_date, r.model_version, r."rank", r.feature, r."value", r.contribution
            FROM {stored} r JOIN published_slices s
              ON s.scores_table = '{validate_identifier(target.table)}' AND s.run_date = r.run_date
             AND s.model_version = r.model_version"""
    )


def replace_duckdb_reasons(
    con: Any, reasons: ReasonsSlice | None, target: ScoresSlice, audited: pa.Table | None, key_sql: str
) -> None:
    """In the swap's transaction: drop the slice's old reasons, insert the audited ones (checked)."""
    if reasons is None:
        return
    exists = con.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [ROWS_SCHEMA, reasons.table],
    ).fetchone()
    if exists is None and audited is None:
        return
    if exists is None:
        ensure_duckdb_reasons(con, reasons, target, key_sql)
    stored, k = f"{ROWS_SCHEMA}.{quoted(reasons.table)}", quoted(target.entity_key)
    con.execute(
        f"DELETE FROM {stored} WHERE run_date = ? AND model_version = ?",
        [target.run_date, target.model_version],
    )
    if audited is None:
        return
    con.register("audited_reasons", audited)
    inserted = con.execute(
        f"""INSERT INTO {stored} SELECT {k}, CAST(? AS DATE), CAST(? AS INTEGER), "rank", feature,
            "value", contribution FROM audited_reasons""",
        [target.run_date, target.model_version],
    ).fetchone()[0]
    con.unregister("audited_reasons")
    if inserted != audited.num_rows:
        raise RuntimeError(f"inserted {inserted} reasons, expected {audited.num_rows}; rolled back")


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
    con.execute(quarantine_ddl(table, k, "VARCHAR", "TIMESTAMP"))
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
