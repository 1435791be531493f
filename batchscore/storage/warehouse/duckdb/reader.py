"""Reads of a DuckDB warehouse for the read API, one short-lived read-only connection per request.

A DuckDB file has one writer process OR several readers at a time, so the server opens the
file read-only per request and closes it right after (a publisher in another process gets the
file between requests; a new publication is seen by the next request). Opening waits briefly,
with backoff, while a publisher holds the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from batchscore.storage.warehouse.contract import validate_identifier
from batchscore.storage.warehouse.duckdb.files import OPENING, busy_file
from batchscore.storage.warehouse.duckdb.tables import ROWS_SCHEMA
from batchscore.storage.warehouse.reading import COLUMNS_SQL, Query, ScoresReader, TableShape, WarehouseDown
from batchscore.storage.warehouse.retry import with_backoff


class DuckDBReader(ScoresReader):
    """Reads a DuckDB warehouse file, read-only, one short-lived connection per request."""

    dialect = "duckdb"

    def __init__(self, url: str, open_attempts: int = 10):
        super().__init__()
        self.path = Path(url.removeprefix("duckdb://"))
        self.open_attempts = open_attempts

    def _open(self) -> Any:
        import duckdb

        if not self.path.exists():
            raise WarehouseDown(f"warehouse file {self.path} does not exist")

        def open_file() -> Any:
            with OPENING:
                return duckdb.connect(str(self.path), read_only=True)

        try:
            return with_backoff(open_file, busy_file, self.open_attempts, first_delay_s=0.01, max_delay_s=0.5)
        except duckdb.Error as exc:
            raise WarehouseDown(f"cannot open {self.path}: {exc}") from exc

    @contextmanager
    def transaction(self, lock_table: str | None = None) -> Iterator[Query]:
        import duckdb

        con = self._open()

        def query(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
            return list(con.execute(sql, list(params)).fetchall())

        try:
            con.execute("BEGIN TRANSACTION")
            yield query
            con.execute("COMMIT")
        except duckdb.CatalogException as exc:
            raise WarehouseDown(f"the warehouse has no published scores yet: {exc}") from exc
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            raise WarehouseDown(str(exc)) from exc
        finally:
            with OPENING:
                con.close()

    def table_columns(self, query: Query, table: str) -> list[tuple[str, str]]:
        return [(str(n), str(t)) for n, t in query(COLUMNS_SQL, [ROWS_SCHEMA, validate_identifier(table)])]

    def rows_sql(self, table: str, shape: TableShape) -> str:
        k = f'"{validate_identifier(shape.entity_key)}"'
        extra = "".join(f', "{validate_identifier(name)}"' for name in (*shape.extra, *shape.context))
        key_type = "BIGINT" if shape.key_kind == "integer" else "VARCHAR"
        return (
            f'SELECT {k}, score{extra} FROM {ROWS_SCHEMA}."{validate_identifier(table)}" '
            f"WHERE run_date = ? AND model_version = ? AND {k} IN (SELECT unnest(CAST(? AS {key_type}[])))"
        )
