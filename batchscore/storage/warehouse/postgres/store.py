"""The PostgreSQL warehouse (`postgresql://user@host:port/db[?schema=name]`), psycopg 3.

Each scores table is partitioned by slice: RANGE on (pipeline, run_date, model_version),
one partition per published slice. A publish runs in ONE transaction:

1. take `pg_advisory_xact_lock` on the slice (same slice: publishes queue; other slices: run),
2. create a fresh table with the slice's constants as defaults and CHECK constraints,
   `COPY (key, score[, predicted_class, p_<class>...]) FROM STDIN (FORMAT BINARY)` into it (the stream is built with numpy),
   build its unique index on the entity key,
3. drop the slice's previous partition and ATTACH the new one, record it in `published_slices`,
4. commit.

Nothing is visible before the commit; a crash or a cut connection at any point rolls it all
back (the staged table included), and readers see the old partition or the new one.
Deleting and re-inserting a million indexed rows would take many seconds; the swap takes
milliseconds, and the attach needs no scan because the CHECK constraint implies the bound.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from batchscore.storage.warehouse.contract import (
    MIGRATIONS,
    ScoresSlice,
    UnsupportedWarehouse,
    analyst_views,
    check_classes,
    duplicate_keys,
    now,
    other_key_kind,
    raise_on_failures,
    validate_identifier,
)
from batchscore.storage.warehouse.interface import PausePoint, StagedSlice, SwapOutcome, Warehouse
from batchscore.storage.warehouse.multiclass import columns_sql
from batchscore.storage.warehouse.outcome_store import Executor, outcome_views
from batchscore.storage.warehouse.output_contract import Columns, context_sql, names_of
from batchscore.storage.warehouse.postgres.binary import copy_stream
from batchscore.storage.warehouse.postgres.contract import apply_pg_contract
from batchscore.storage.warehouse.postgres.quarantine import ensure_pg_quarantine, replace_pg_quarantine
from batchscore.storage.warehouse.postgres.reasons import (
    ensure_reasons_table,
    paired_partition,
    stage_reasons,
    swap_reasons,
)
from batchscore.storage.warehouse.postgres.records import PostgresRecords
from batchscore.storage.warehouse.postgres.roles import grant_roles
from batchscore.storage.warehouse.postgres.sql import (
    copy_columns,
    lock_key,
    partition_sql,
    split_url,
    to_pyformat,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from batchscore.storage.warehouse.postgres.reader import PostgresReader

T = TypeVar("T")

PG_KEY_SQL = {"integer": "BIGINT", "string": "TEXT"}
COPY_CHUNK_BYTES = 8 << 20
SWAP_LOCK_TIMEOUT = "60s"  # waiting longer for readers to let go of the table fails the attempt loudly


class PostgresWarehouse(PostgresRecords, Warehouse):
    """A PostgreSQL database; one connection per operation, everything inside `schema`."""

    dialect = "postgresql"
    audit_checks_duplicates = False  # the partition's unique index refuses duplicate keys anyway

    def __init__(self, url: str):
        self.url = url
        self.conninfo, self.schema = split_url(url)
        self._migrated = False
        self._ready_tables: set[str] = set()
        self._lock = threading.Lock()

    @contextmanager
    def connect(self, autocommit: bool = False, read_only: bool = False) -> Iterator[Any]:
        """A connection with `search_path` set to the warehouse schema; commits on success, rolls back on error."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.conninfo, autocommit=True, application_name="batchscore") as con:
            con.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            con.autocommit = autocommit
            con.read_only = read_only
            yield con

    def ident(self, name: str) -> Any:
        from psycopg import sql

        return sql.Identifier(validate_identifier(name))

    def migrate(self) -> list[int]:
        """Apply pending schema migrations, each in its own transaction, under an advisory lock."""
        from psycopg import sql

        with self._lock:
            if self._migrated:
                return []
            applied = []
            with self.connect(autocommit=True) as con:
                key = lock_key("batchscore-migrations", self.schema)
                con.execute("SELECT pg_advisory_lock(%s)", [key])
                try:
                    exists = con.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [self.schema])
                    if exists.fetchone() is None:
                        con.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
                    con.execute(
                        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                        "name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
                    )
                    done = {row[0] for row in con.execute("SELECT version FROM schema_migrations")}
                    for version, name, statements in MIGRATIONS:
                        if version in done:
                            continue
                        with con.transaction():
                            for statement in statements:
                                con.execute(statement)
                            con.execute(
                                "INSERT INTO schema_migrations VALUES (%s, %s, %s)", [version, name, now()]
                            )
                        applied.append(version)
                finally:
                    con.execute("SELECT pg_advisory_unlock(%s)", [key])
            self._migrated = True
            return applied

    def ensure_scores_table(
        self,
        table: str,
        entity_key: str,
        key: str = "integer",
        probability: bool = True,
        classes: tuple[str, ...] = (),
    ) -> None:
        """Create the partitioned scores table and its analyst views if missing; a table holding
        the other kind of entity key (`integer` or `string`), or other classes, refuses the publish."""
        from psycopg import sql

        if table in self._ready_tables:
            self._check_key_kind(table, entity_key, key, classes)
            return
        t, k = self.ident(table), self.ident(entity_key)
        with self.connect() as con:
            con.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key("ddl", self.schema, table)])
            kind = con.execute(
                "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s",
                [self.schema, table],
            ).fetchone()
            if kind is None:
                con.execute(
                    sql.SQL(
                        """CREATE TABLE {t} (
                        {k} {key_type} NOT NULL, run_date DATE NOT NULL, pipeline TEXT NOT NULL,
                        model_name TEXT NOT NULL, model_version INTEGER NOT NULL,
                        score DOUBLE PRECISION NOT NULL{extra}, run_id TEXT NOT NULL)
                        PARTITION BY RANGE (pipeline, run_date, model_version)"""
                    ).format(
                        t=t,
                        k=k,
                        key_type=sql.SQL(PG_KEY_SQL[key]),
                        extra=sql.SQL(columns_sql(classes, "TEXT")),
                    )
                )
                quote = lambda n: self.ident(n).as_string(con)  # noqa: E731
                for name, select in analyst_views(table, entity_key, quote, probability, classes):
                    con.execute(sql.SQL("CREATE VIEW {} AS ").format(self.ident(name)) + sql.SQL(select))
            elif kind[0] != "p":
                raise UnsupportedWarehouse(
                    f"{self.schema}.{table} exists but is not partitioned by slice; rename it or migrate it by hand"
                )
        self._check_key_kind(table, entity_key, key, classes)
        self._ready_tables.add(table)

    def _check_key_kind(self, table: str, entity_key: str, key: str, classes: tuple[str, ...]) -> None:
        with self.connect() as con:
            columns = dict(
                con.execute(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                    "AND table_name = %s ORDER BY ordinal_position",
                    [self.schema, table],
                ).fetchall()
            )
        if entity_key in columns and columns[entity_key].upper() != PG_KEY_SQL[key]:
            raise other_key_kind(table, entity_key, columns[entity_key], key)
        check_classes(table, list(columns), classes)

    def _prepare_companions(self, staged: StagedSlice) -> None:
        """The reasons and quarantine tables, each created in its own short transaction (DDL locks)."""
        if staged.reasons is not None and staged.explained is not None:
            ensure_reasons_table(self, staged.reasons, staged.target.entity_key, PG_KEY_SQL[staged.key_kind])
        ensure_pg_quarantine(self, staged.quarantine, staged.target.entity_key)

    def _swap(self, staged: StagedSlice, pause_at: PausePoint) -> SwapOutcome:
        """COPY into a fresh partition, index it, swap it in with the slice's reasons and the day's
        quarantined rows, all in one transaction."""
        target, expected_rows = staged.target, staged.expected_rows
        mark = time.perf_counter()
        payload = copy_stream(staged.scores, target.entity_key, target.classes, names_of(staged.context))
        timings: dict[str, float] = {"encode": time.perf_counter() - mark}
        t, k = self.ident(target.table), self.ident(target.entity_key)
        partition_name = partition_table_name(target)
        part = self.ident(partition_name)
        with self.connect() as con:
            self._lock_slice(con, target)
            con.execute("SET LOCAL maintenance_work_mem = '256MB'")
            mark = time.perf_counter()
            stored_sql = context_sql(staged.stored, self.dialect, lambda n: self.ident(n).as_string(con))
            key_sql = PG_KEY_SQL[staged.key_kind]
            con.execute(partition_sql(target, part, k, key_sql, partition_name, stored_sql))
            columns_sql = copy_columns(k, target.classes, names_of(staged.context))
            self._copy_into(con, part, columns_sql, payload, expected_rows, pause_at)
            timings["copy"] = time.perf_counter() - mark
            mark = time.perf_counter()
            self._index_keys(con, target, part, k, staged.scores)
            timings["index"] = time.perf_counter() - mark
            reasons_partition = None
            if staged.reasons is not None and staged.explained is not None:
                reasons_partition = paired_partition(staged.reasons.table, partition_name)
                stage_reasons(con, self, target, staged.reasons, staged.explained, key_sql, reasons_partition)
            pause_at("staged")
            mark = time.perf_counter()
            swap_reasons(con, self, target, staged.reasons, reasons_partition)
            replace_pg_quarantine(con, self, staged.quarantine, target)
            replaced_rows = self._attach(con, target, t, part, partition_name, expected_rows)
            timings["swap"] = time.perf_counter() - mark
            pause_at("swapped")
            mark = time.perf_counter()
        timings["commit"] = time.perf_counter() - mark
        return SwapOutcome(replaced_rows, timings, partition=partition_name)

    def ensure_contract(self, target: ScoresSlice, columns: Columns) -> Columns:
        """Record `columns` as the table's next output contract version if they changed; returns
        every stored context column (a staged partition needs them all)."""
        with self.connect() as con:
            return apply_pg_contract(con, self.schema, target, columns, SWAP_LOCK_TIMEOUT)

    def _lock_slice(self, con: Any, target: ScoresSlice) -> None:
        """Queue behind any other publish of the same slice (released at commit or rollback)."""
        con.execute(
            "SELECT pg_advisory_xact_lock(%s)",
            [
                lock_key(
                    "slice",
                    self.schema,
                    target.table,
                    target.pipeline,
                    target.run_date,
                    target.model_version,
                )
            ],
        )

    def _copy_into(
        self, con: Any, part: Any, columns: Any, payload: memoryview, expected_rows: int, pause_at: PausePoint
    ) -> None:
        """Stream the binary COPY payload in chunks (pausing at `copying` after the first one)."""
        from psycopg import sql

        with con.cursor() as cur:
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(part, columns)) as copy:
                view = memoryview(payload)
                for offset in range(0, len(view), COPY_CHUNK_BYTES):
                    copy.write(view[offset : offset + COPY_CHUNK_BYTES])
                    if offset == 0:
                        pause_at("copying")
            copied = cur.rowcount
        if copied != expected_rows:
            raise RuntimeError(f"COPY loaded {copied} rows, expected {expected_rows}; rolled back")

    def _index_keys(self, con: Any, target: ScoresSlice, part: Any, k: Any, scores: pa.Table) -> None:
        """Build the unique key index; duplicate keys raise AuditFailed (the transaction rolls back)."""
        from psycopg import sql
        from psycopg.errors import UniqueViolation

        try:
            con.execute(sql.SQL("CREATE UNIQUE INDEX ON {} ({})").format(part, k))
        except UniqueViolation:  # the audit left uniqueness to the index; the transaction rolls back
            duplicates = duplicate_keys(scores.column(target.entity_key))
            raise_on_failures([f"{duplicates} duplicate keys"], target)
            raise

    def _attach(
        self, con: Any, target: ScoresSlice, t: Any, part: Any, partition_name: str, rows: int
    ) -> int:
        """Drop the slice's previous partition, attach the new one and record it; returns rows replaced."""
        from psycopg import sql

        con.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(SWAP_LOCK_TIMEOUT)))
        key = [target.table, target.pipeline, target.run_date, target.model_version]
        where = "scores_table = %s AND pipeline = %s AND run_date = %s AND model_version = %s"
        previous = con.execute(
            f"SELECT partition_name, row_count FROM published_slices WHERE {where}", key
        ).fetchone()
        replaced = 0
        if previous is not None:
            replaced = int(previous[1])
            if previous[0]:
                con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.ident(previous[0])))
            con.execute(f"DELETE FROM published_slices WHERE {where}", key)
        con.execute(
            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}, {}, {}) TO ({}, {}, {})").format(
                t,
                part,
                sql.Literal(target.pipeline),
                sql.Literal(target.run_date),
                sql.Literal(target.model_version),
                sql.Literal(target.pipeline),
                sql.Literal(target.run_date),
                sql.Literal(target.model_version + 1),
            )
        )
        con.execute(
            "INSERT INTO published_slices VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [*key, target.model_name, target.run_id, rows, partition_name, now(), *target.lineage()],
        )
        return replaced

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read-only query (`?` placeholders, as on DuckDB)."""
        self.migrate()
        with self.connect(read_only=True) as con:
            return list(con.execute(to_pyformat(sql) if params else sql, params or None).fetchall())

    def init_roles(self, writer: str, analyst: str) -> dict[str, str]:
        """Create (or update) a writer role that can publish and an analyst role that can only read.

        Run as a role that may create roles. Existing warehouse tables and views are handed to
        the writer (attaching and dropping partitions needs ownership); the analyst gets SELECT
        on everything in the schema now and, through default privileges, on whatever the
        writer creates later. Both roles may log in; set passwords with ALTER ROLE.
        """
        for name in (writer, analyst):
            validate_identifier(name, "role name")
        if writer == analyst:
            raise ValueError("the writer and analyst roles must differ")
        self.migrate()
        with self.connect() as con:
            con.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key("roles", self.schema)])
            handed_over = grant_roles(con, self.schema, writer, analyst)
        return {
            "writer": writer,
            "analyst": analyst,
            "schema": self.schema,
            "objects_handed_over": str(handed_over),
        }

    def query_columns(self, sql: str, params: list[Any] | None = None) -> dict[str, np.ndarray]:
        """A read-only query's result as one numpy array per column (`?` placeholders)."""
        self.migrate()
        with self.connect(read_only=True) as con:
            cursor = con.execute(to_pyformat(sql) if params else sql, params or None)
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        return {name: np.array([row[i] for row in rows]) for i, name in enumerate(names)}

    def _outcome_write(self, pipeline: str, lock: tuple[object, ...], write: Callable[[Executor], T]) -> T:
        """One transaction; writers of one key queue on an advisory lock; views created if missing."""
        from psycopg import sql

        self.migrate()
        with self.connect() as con:
            con.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key("outcome", *lock)])
            for name, select in outcome_views(pipeline):
                exists = con.execute(
                    "SELECT 1 FROM pg_views WHERE schemaname = current_schema() AND viewname = %s", [name]
                ).fetchone()
                if exists is None:
                    con.execute(sql.SQL("CREATE VIEW {} AS ").format(sql.Identifier(name)) + sql.SQL(select))

            def many(query: str, rows: list[list[Any]]) -> None:
                with con.cursor() as cur:
                    cur.executemany(to_pyformat(query), rows)

            return write(Executor(lambda query, params: con.execute(to_pyformat(query), params), many))

    def reader(self) -> PostgresReader:
        from batchscore.storage.warehouse.postgres.reader import PostgresReader

        return PostgresReader(self.url)


def partition_table_name(target: ScoresSlice) -> str:
    """A fresh, readable partition name: `<table>_<yyyymmdd>_v<version>_<nonce>`, at most 63 characters."""
    suffix = f"_{target.run_date:%Y%m%d}_v{target.model_version}_{uuid.uuid4().hex[:8]}"
    return validate_identifier(target.table[: 63 - len(suffix)] + suffix, "partition name")
