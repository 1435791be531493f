"""Reads of a PostgreSQL warehouse for the read API, through a small pool of psycopg connections.

A broken connection is dropped and, once per request, replaced by a fresh one, so the server
recovers from a restart of the database without restarting itself. Every read is a READ ONLY,
REPEATABLE READ transaction.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from batchscore.storage.warehouse.contract import validate_identifier
from batchscore.storage.warehouse.postgres.sql import split_url, to_pyformat
from batchscore.storage.warehouse.reading import COLUMNS_SQL, Query, ScoresReader, TableShape, WarehouseDown

LOCK_TIMEOUT = "5s"


class PostgresReader(ScoresReader):
    """Reads a PostgreSQL warehouse through a pool of at most `size` connections."""

    dialect = "postgresql"

    def __init__(self, url: str, size: int = 8, connect_timeout_s: int = 3):
        super().__init__()
        self.conninfo, self.schema = split_url(url)
        self.connect_timeout_s = connect_timeout_s
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    def _connect(self) -> Any:
        import psycopg
        from psycopg import sql

        con = psycopg.connect(
            self.conninfo,
            autocommit=True,
            connect_timeout=self.connect_timeout_s,
            application_name="batchscore-serve",
        )
        con.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        return con

    def _take(self) -> tuple[Any, bool]:
        """A connection and whether it came from the pool (it may have died since)."""
        while True:
            try:
                con = self._idle.get_nowait()
            except queue.Empty:
                return self._connect(), False
            if not con.closed and not con.broken:
                return con, True
            con.close()

    def _begin(self, lock_table: str | None) -> Any:
        """A connection inside a READ ONLY, REPEATABLE READ transaction (the table locked first)."""
        import psycopg
        from psycopg import sql

        for attempt in (1, 2):
            try:
                con, pooled = self._take()
            except psycopg.OperationalError as exc:
                raise WarehouseDown(f"cannot connect to PostgreSQL: {exc}") from exc
            try:
                # one round trip; the lock comes before the snapshot: a swap is seen entirely or not at all
                begin = sql.SQL(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL lock_timeout = {}"
                )
                statements = [begin.format(sql.Literal(LOCK_TIMEOUT))]
                if lock_table is not None:
                    ident = sql.Identifier(validate_identifier(lock_table))
                    statements.append(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(ident))
                con.execute(sql.SQL("; ").join(statements))
                return con
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                con.close()
                if pooled and attempt == 1:
                    continue  # a pooled connection died while idle (database restarted): one fresh try
                raise WarehouseDown(f"PostgreSQL connection failed: {exc}") from exc
            except psycopg.Error as exc:
                self._give_back(con)
                raise WarehouseDown(f"the warehouse has no published scores yet: {exc}") from exc
        raise AssertionError("unreachable")

    def _give_back(self, con: Any) -> None:
        """Roll back whatever is open and return the connection to the pool (or drop a broken one)."""
        try:
            con.execute("ROLLBACK")
        except Exception:
            con.close()
            return
        self._idle.put(con)

    @contextmanager
    def transaction(self, lock_table: str | None = None) -> Iterator[Query]:
        import psycopg

        with self._slots:
            con = self._begin(lock_table)

            def query(text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                return list(
                    con.execute(to_pyformat(text) if params else text, list(params) or None).fetchall()
                )

            try:
                yield query
                con.execute("COMMIT")
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                con.close()
                raise WarehouseDown(f"PostgreSQL connection failed: {exc}") from exc
            except psycopg.errors.UndefinedTable as exc:
                self._give_back(con)
                raise WarehouseDown(f"the warehouse has no published scores yet: {exc}") from exc
            except BaseException:
                self._give_back(con)
                raise
            self._idle.put(con)

    def table_columns(self, query: Query, table: str) -> list[tuple[str, str]]:
        rows = query(COLUMNS_SQL, [self.schema, validate_identifier(table)])
        return [(str(n), str(t)) for n, t in rows if n not in ("run_date", "pipeline", "model_name")]

    def rows_sql(self, table: str, shape: TableShape) -> str:
        k = f'"{validate_identifier(shape.entity_key)}"'
        extra = "".join(f', "{validate_identifier(name)}"' for name in (*shape.extra, *shape.context))
        key_type = "BIGINT" if shape.key_kind == "integer" else "TEXT"
        return (
            f'SELECT {k}, score{extra} FROM "{validate_identifier(table)}" '
            f"WHERE run_date = ? AND model_version = ? AND {k} = ANY(CAST(? AS {key_type}[]))"
        )
