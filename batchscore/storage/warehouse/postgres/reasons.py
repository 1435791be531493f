"""Reason codes on PostgreSQL: one partition per published slice, swapped with the scores'.

`score_reasons_<pipeline>` is partitioned by RANGE (run_date, model_version). A publish
COPYs the audited reasons into a fresh table (named like the slice's new scores partition:
`score_reasons_<p>_<yyyymmdd>_v<version>_<nonce>`), then, in the transaction that swaps the
scores partition, drops the slice's attached reasons partition and attaches the new one. Readers see both old or both new. The analyst
role reads the table through the writer's default privileges (`init_roles`).
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

from batchscore.storage.warehouse.contract import ScoresSlice, validate_identifier
from batchscore.storage.warehouse.postgres.sql import lock_key
from batchscore.storage.warehouse.reasons import REASON_COLUMNS, ReasonsSlice

if TYPE_CHECKING:
    import pyarrow as pa

SLICE_SUFFIX = re.compile(r"_\d{8}_v\d+_[0-9a-f]{8}$")


def paired_partition(reasons_table: str, scores_partition: str) -> str:
    """The reasons partition that goes with a scores partition: same slice suffix, own table prefix."""
    match = SLICE_SUFFIX.search(scores_partition)
    suffix = match.group(0) if match else f"_{scores_partition[-20:]}"
    return validate_identifier(reasons_table[: 63 - len(suffix)] + suffix, "partition name")


def ensure_reasons_table(warehouse: Any, reasons: ReasonsSlice, entity_key: str, key_sql: str) -> None:
    """Create the partitioned reasons table if missing (its own short transaction, DDL lock)."""
    from psycopg import sql

    with warehouse.connect() as con:
        con.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key("ddl", warehouse.schema, reasons.table)])
        con.execute(
            sql.SQL(
                """CREATE TABLE IF NOT EXISTS {t} (
                {k} {key_type} NOT NULL, run_date DATE NOT NULL, model_version INTEGER NOT NULL,
                rank SMALLINT NOT NULL, feature TEXT NOT NULL, value DOUBLE PRECISION,
                contribution DOUBLE PRECISION NOT NULL)
                PARTITION BY RANGE (run_date, model_version)"""
            ).format(
                t=warehouse.ident(reasons.table), k=warehouse.ident(entity_key), key_type=sql.SQL(key_sql)
            )
        )


def stage_reasons(
    con: Any,
    warehouse: Any,
    target: ScoresSlice,
    reasons: ReasonsSlice,
    audited: pa.Table,
    key_sql: str,
    name: str,
) -> None:
    """COPY the audited reasons into the fresh table `name` (the slice's constants as defaults
    and CHECK, so the attach needs no scan); checks the row count."""
    import pyarrow.csv as pcsv
    from psycopg import sql

    part, k, lit = warehouse.ident(name), warehouse.ident(target.entity_key), sql.Literal
    con.execute(
        sql.SQL(
            """CREATE TABLE {part} (
            {k} {key_type} NOT NULL, run_date DATE NOT NULL DEFAULT {day},
            model_version INTEGER NOT NULL DEFAULT {version}, rank SMALLINT NOT NULL,
            feature TEXT NOT NULL, value DOUBLE PRECISION, contribution DOUBLE PRECISION NOT NULL,
            CONSTRAINT {check} CHECK (run_date = {day} AND model_version = {version}))"""
        ).format(
            part=part,
            k=k,
            key_type=sql.SQL(key_sql),
            day=lit(target.run_date),
            version=lit(target.model_version),
            check=warehouse.ident(f"{name[:50]}_slice"),
        )
    )
    buffer = io.BytesIO()
    pcsv.write_csv(audited, buffer, pcsv.WriteOptions(include_header=False))
    columns = sql.SQL(", ").join([k, *(sql.Identifier(c) for c in REASON_COLUMNS)])
    with con.cursor() as cur:
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT CSV)").format(part, columns)) as copy:
            view = buffer.getbuffer()
            for offset in range(0, len(view), 8 << 20):
                copy.write(view[offset : offset + (8 << 20)])
        copied = cur.rowcount
    if copied != audited.num_rows:
        raise RuntimeError(f"COPY loaded {copied} reasons, expected {audited.num_rows}; rolled back")


def swap_reasons(
    con: Any, warehouse: Any, target: ScoresSlice, reasons: ReasonsSlice | None, staged: str | None
) -> None:
    """Before the scores swap, in its transaction: drop the slice's attached reasons partition,
    attach the staged one (if any)."""
    from psycopg import sql

    if reasons is None:
        return
    # The slice's current reasons partition, found by its name (date and version in it).
    prefix = paired_partition(reasons.table, f"_{target.run_date:%Y%m%d}_v{target.model_version}_{'0' * 8}")[
        :-8
    ]
    attached = con.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s) AND left(c.relname, %s) = %s",
        [f"{warehouse.schema}.{reasons.table}", len(prefix), prefix],
    ).fetchall()
    for (old,) in attached:
        con.execute(sql.SQL("DROP TABLE {}").format(warehouse.ident(old)))
    if staged is None:
        return
    lit = sql.Literal
    con.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}, {}) TO ({}, {})").format(
            warehouse.ident(reasons.table),
            warehouse.ident(staged),
            lit(target.run_date),
            lit(target.model_version),
            lit(target.run_date),
            lit(target.model_version + 1),
        )
    )
