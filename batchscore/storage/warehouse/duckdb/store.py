"""The embedded DuckDB warehouse: one file, one short-lived connection per operation.

A DuckDB file is opened read-write by one process at a time, and transactions inside a
process are optimistic: two writers of the same row conflict at commit. Publishing a slice
writes its row in `published_slices` in the same transaction as the scores, so two
publishes of the same slice always conflict; the loser retries with backoff (bounded, the
last error re-raised) and then replaces the winner's set. Exactly one set remains.

Scores are stored narrow (`slice_rows.<table>`: key, run_date, model_version, score, and for
multiclass scores predicted_class and one p_<class> per class) and read through the view `<table>`, which joins each slice's constants (pipeline, model name,
run id) from `published_slices`: a row and its slice's record are committed together, so
the view never shows a row without its slice or a slice with another run's rows.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from batchscore.storage.warehouse.contract import MIGRATIONS, RunRecord, ScoresSlice, now, quoted
from batchscore.storage.warehouse.duckdb.companions import replace_duckdb_quarantine, replace_duckdb_reasons
from batchscore.storage.warehouse.duckdb.contract import apply_duckdb_contract, duckdb_views
from batchscore.storage.warehouse.duckdb.files import OPENING, is_write_conflict
from batchscore.storage.warehouse.duckdb.tables import (
    KEY_SQL,
    ROWS_SCHEMA,
    SharedScoresTable,
    check_key_kind,
    convert_wide_table,
    table_type,
)
from batchscore.storage.warehouse.interface import PausePoint, StagedSlice, SwapOutcome, Warehouse
from batchscore.storage.warehouse.multiclass import class_columns, columns_sql
from batchscore.storage.warehouse.outcome_store import Executor, outcome_views
from batchscore.storage.warehouse.output_contract import Columns, names_of
from batchscore.storage.warehouse.records import drift_row, evidence_json
from batchscore.storage.warehouse.retry import with_backoff

if TYPE_CHECKING:
    import pyarrow as pa

    from batchscore.storage.warehouse.duckdb.reader import DuckDBReader

T = TypeVar("T")


class DuckDBWarehouse(Warehouse):
    """An embedded DuckDB file (`duckdb:///path/to/file.duckdb`)."""

    dialect = "duckdb"

    def __init__(self, url: str, retry_attempts: int = 8):
        self.url = url
        self.path = Path(url.removeprefix("duckdb://"))
        self.retry_attempts = retry_attempts
        self._migrated = False
        self._ready_tables: set[tuple[object, ...]] = set()
        self._lock = threading.Lock()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[Any]:
        import duckdb

        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)

        def open_file() -> Any:
            with OPENING:
                return duckdb.connect(str(self.path), read_only=read_only)

        con: Any = with_backoff(open_file, is_write_conflict, attempts=self.retry_attempts)
        try:
            yield con
        finally:
            with OPENING:
                con.close()

    def _retrying(self, attempt: Any) -> Any:
        return with_backoff(attempt, is_write_conflict, attempts=self.retry_attempts)

    def migrate(self) -> list[int]:
        """Apply pending schema migrations, each in its own transaction; returns those applied."""
        with self._lock:
            if self._migrated:
                return []
            applied: list[int] = self._retrying(self._migrate_once)
            self._migrated = True
            return applied

    def _migrate_once(self) -> list[int]:
        applied = []
        with self.connect() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
            )
            done = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
            for version, name, statements in MIGRATIONS:
                if version in done:
                    continue
                con.execute("BEGIN")
                try:
                    for statement in statements:
                        con.execute(statement)
                    con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, name, now()])
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                applied.append(version)
        return applied

    def ensure_scores_table(
        self,
        table: str,
        entity_key: str,
        key: str = "integer",
        probability: bool = True,
        classes: tuple[str, ...] = (),
    ) -> None:
        """Create the slice-row store, the `<table>` view and the analyst views if missing.

        Rows are stored narrow, in `slice_rows.<table>` (entity key, run_date, model_version,
        score); the view `<table>` adds each slice's pipeline, model name and run id from its
        `published_slices` row, so a publish writes the constants once, not once per row.
        A table left by an earlier version (all seven columns stored per row) is converted
        here, in one transaction, keeping every row it held. `key` is the entity key's kind
        (`integer` or `string`); a table holding the other kind refuses the publish, and so
        does one created for other `classes` (multiclass) or none.
        """
        shape = (table, entity_key, key, probability, tuple(classes))
        if shape in self._ready_tables:
            return
        stored = f"{ROWS_SCHEMA}.{quoted(table)}"
        k = quoted(entity_key)

        def create() -> None:
            with self.connect() as con:
                con.execute("BEGIN")
                try:
                    con.execute(f"CREATE SCHEMA IF NOT EXISTS {ROWS_SCHEMA}")
                    if table_type(con, "main", table) == "BASE TABLE":
                        convert_wide_table(con, table, entity_key)
                    con.execute(
                        f"""CREATE TABLE IF NOT EXISTS {stored} ({k} {KEY_SQL[key]} NOT NULL,
                            run_date DATE NOT NULL, model_version INTEGER NOT NULL,
                            score DOUBLE PRECISION NOT NULL{columns_sql(classes, "VARCHAR")})"""
                    )
                    check_key_kind(con, table, entity_key, key, tuple(classes))
                    for name, select in duckdb_views(con, stored, table, entity_key, probability, classes):
                        con.execute(f"CREATE OR REPLACE VIEW {quoted(name)} AS {select}")
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise

        self._retrying(create)
        self._ready_tables.add(shape)

    def _swap(self, staged: StagedSlice, pause_at: PausePoint) -> SwapOutcome:
        """Replace the slice in one optimistic transaction, retried as a whole on a write conflict."""
        target = staged.target
        # the audit proved run_date and model_version equal the slice's: only keys and scores are stored
        audited = staged.scores.select(
            [target.entity_key, "score", *class_columns(target.classes), *names_of(staged.context)]
        )
        pause_at("staged")
        started, attempts = time.perf_counter(), 0

        def swap() -> int:
            nonlocal attempts
            attempts += 1
            return self._replace_slice(staged, audited, pause_at)

        replaced: int = self._retrying(swap)
        return SwapOutcome(replaced, {"swap": time.perf_counter() - started}, attempts=attempts)

    def _replace_slice(self, staged: StagedSlice, audited: pa.Table, pause_at: PausePoint) -> int:
        """Replace the slice's rows and its `published_slices` row in one transaction; returns rows replaced.

        The audited Arrow table is scanned by DuckDB in place (no second read of the files);
        the inserted count is checked against the audited one before the commit.
        """
        target, expected_rows = staged.target, staged.expected_rows
        stored, k = f"{ROWS_SCHEMA}.{quoted(target.table)}", quoted(target.entity_key)
        key = [target.table, target.pipeline, target.run_date, target.model_version]
        with self.connect() as con:
            con.execute("BEGIN")
            try:
                self._check_owner(con, target)
                con.execute(
                    "DELETE FROM published_slices WHERE scores_table = ? AND pipeline = ? AND run_date = ? "
                    "AND model_version = ?",
                    key,
                )
                con.execute(
                    "INSERT INTO published_slices VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                    [*key, target.model_name, target.run_id, expected_rows, now(), *target.lineage()],
                )
                deleted = con.execute(
                    f"DELETE FROM {stored} WHERE run_date = ? AND model_version = ?",
                    [target.run_date, target.model_version],
                ).fetchone()[0]
                con.register("audited_scores", audited)
                extra = "".join(f", {quoted(name)}" for name in audited.column_names[2:])
                inserted = con.execute(
                    f"""INSERT INTO {stored} ({k}, run_date, model_version, score{extra})
                        SELECT {k}, CAST(? AS DATE), CAST(? AS INTEGER), score{extra} FROM audited_scores""",
                    [target.run_date, target.model_version],
                ).fetchone()[0]
                con.unregister("audited_scores")
                if inserted != expected_rows:
                    raise RuntimeError(f"inserted {inserted} rows, expected {expected_rows}; rolled back")
                replace_duckdb_reasons(
                    con, staged.reasons, target, staged.explained, KEY_SQL[staged.key_kind]
                )
                replace_duckdb_quarantine(con, staged.quarantine, target, now())
                pause_at("swapped")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return int(deleted)

    @staticmethod
    def _check_owner(con: Any, target: ScoresSlice) -> None:
        """A scores table holds one pipeline's scores: another pipeline's publish is refused."""
        owners = con.execute(
            "SELECT DISTINCT pipeline FROM published_slices WHERE scores_table = ? AND pipeline <> ?",
            [target.table, target.pipeline],
        ).fetchall()
        if owners:
            raise SharedScoresTable(
                f"table {target.table} already holds scores of pipeline {owners[0][0]!r}; "
                f"give pipeline {target.pipeline!r} its own warehouse.scores_table"
            )

    def ensure_contract(self, target: ScoresSlice, columns: Columns) -> Columns:
        """Record `columns` as the table's next output contract version if they changed; returns
        every context column the table stores."""
        stored = f"{ROWS_SCHEMA}.{quoted(target.table)}"

        def apply() -> Columns:
            with self.connect() as con:
                return apply_duckdb_contract(con, stored, target, columns)[1]

        applied: Columns = self._retrying(apply)
        return applied

    def record_run(self, run: RunRecord) -> None:
        """Append one attempt to `scoring_runs` (every attempt is kept)."""
        self.migrate()
        row = run.row(uuid.uuid4().hex)

        def insert() -> None:
            with self.connect() as con:
                con.execute(f"INSERT INTO scoring_runs VALUES ({', '.join('?' * len(row))})", row)

        self._retrying(insert)

    def replace_drift_metrics(
        self, pipeline: str, run_date: date, model_version: int, rows: list[dict[str, Any]]
    ) -> None:
        self.migrate()

        def replace() -> None:
            with self.connect() as con:
                con.execute("BEGIN")
                try:
                    con.execute(
                        "DELETE FROM drift_metrics WHERE pipeline = ? AND run_date = ? AND model_version = ?",
                        [pipeline, run_date, model_version],
                    )
                    if rows:
                        con.executemany(
                            "INSERT INTO drift_metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [drift_row(pipeline, run_date, model_version, r) for r in rows],
                        )
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise

        self._retrying(replace)

    def record_event(
        self,
        pipeline: str,
        run_date: date,
        model_name: str,
        model_version: int,
        event: str,
        decision: str,
        evidence: dict[str, Any],
        run_id: str,
    ) -> None:
        """Store a decision (e.g. the drift gate's) once per (pipeline, day, version, event)."""
        self.migrate()
        key = [pipeline, run_date, model_version, event]
        values = [
            *key[:2],
            model_name,
            model_version,
            event,
            decision,
            evidence_json(evidence),
            run_id,
            now(),
        ]

        def replace() -> None:
            with self.connect() as con:
                con.execute("BEGIN")
                try:
                    con.execute(
                        "DELETE FROM model_events WHERE pipeline = ? AND run_date = ? AND model_version = ? "
                        "AND event = ?",
                        key,
                    )
                    con.execute("INSERT INTO model_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise

        self._retrying(replace)

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read-only query; a warehouse used for the first time gets its schema first."""
        if not self.path.exists():
            self.migrate()
        with self.connect(read_only=True) as con:
            return list(con.execute(sql, params or []).fetchall())

    def query_columns(self, sql: str, params: list[Any] | None = None) -> dict[str, np.ndarray]:
        """A read-only query's result as one numpy array per column (`?` placeholders)."""
        self.migrate()
        with self.connect(read_only=True) as con:
            cursor = con.execute(sql, params or [])
            return {name: _unmasked(values) for name, values in cursor.fetchnumpy().items()}

    def _outcome_write(self, pipeline: str, lock: tuple[object, ...], write: Callable[[Executor], T]) -> T:
        """One transaction, after making sure the pipeline's views exist; conflicts retry it whole."""
        self.migrate()

        def attempt() -> T:
            with self.connect() as con:
                con.execute("BEGIN")
                try:
                    for name, select in outcome_views(pipeline):
                        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {select}')
                    result = write(Executor(con.execute, con.executemany))
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            return result

        done: T = self._retrying(attempt)
        return done

    def reader(self) -> DuckDBReader:
        from batchscore.storage.warehouse.duckdb.reader import DuckDBReader

        return DuckDBReader(self.url)


def _unmasked(values: Any) -> np.ndarray:
    """DuckDB's NULLs (a masked array) as NaN in float columns and None in the others."""
    if not isinstance(values, np.ma.MaskedArray):
        return np.asarray(values)
    if values.dtype.kind == "f":
        return values.filled(np.nan)
    filled = values.astype(object)
    filled[np.ma.getmaskarray(values)] = None
    return np.asarray(filled)
