"""PostgreSQL's side of the output contract: applying a contract version in the connection's
transaction under the table's DDL lock (see `output_contract.py` for the contract itself)."""

from __future__ import annotations

from typing import Any

from batchscore.storage.warehouse.contract import ScoresSlice, validate_identifier
from batchscore.storage.warehouse.output_contract import Columns, ContractChange, apply_contract


def apply_pg_contract(
    con: Any, schema: str, target: ScoresSlice, columns: Columns, lock_timeout: str
) -> Columns:
    """`apply_contract` in the connection's transaction under the table's DDL lock; returns every
    stored context column. A view of the user's on `latest_<table>` refuses a change, clearly."""
    from psycopg import errors, sql

    from batchscore.storage.warehouse.postgres.sql import lock_key, pg_run

    con.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key("ddl", schema, target.table)])
    con.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(lock_timeout)))

    def quote(name: str) -> str:
        return str(sql.Identifier(validate_identifier(name)).as_string(con))

    try:
        return apply_contract(pg_run(con), "postgresql", quote(target.table), target, columns, quote)[1]
    except errors.DependentObjectsStillExist as exc:
        raise ContractChange(
            f"the output contract of {target.table} changed, but other views depend on latest_{target.table} "
            f"(which follows the latest version): make them depend on a versioned view {target.table}_v<N> "
            f"instead; nothing was published ({exc.diag.message_primary})"
        ) from exc
