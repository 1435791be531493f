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

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchscore.storage.warehouse.contract import (
    MIGRATIONS,
    PausePoint,
    RunRecord,
    ScoresSlice,
    audit_scores,
    key_kind,
    no_pause,
    now,
    quoted,
    raise_on_failures,
    read_scores,
)
from batchscore.storage.warehouse.duckdb_tables import (
    KEY_SQL,
    ROWS_SCHEMA,
    SharedScoresTable,
    check_key_kind,
    convert_wide_table,
    table_type,
)
from batchscore.storage.warehouse.multiclass import class_columns, columns_sql
from batchscore.storage.warehouse.outcome_store import OutcomeStore
from batchscore.storage.warehouse.output_contract import (
    Columns,
    apply_duckdb_contract,
    duckdb_views,
    names_of,
    with_context,
)
from batchscore.storage.warehouse.quarantine_store import QuarantineSlice, replace_duckdb_quarantine
from batchscore.storage.warehouse.reasons import ReasonsSlice, audited_reasons, replace_duckdb_reasons
from batchscore.storage.warehouse.retry import with_backoff

if TYPE_CHECKING:
    import pyarrow as pa

OPENING = threading.Lock()
"""Threads of one process share DuckDB's database instance; opening and closing it concurrently races."""


def is_write_conflict(exc: BaseException) -> bool:
    """A conflict another writer caused: the transaction can be retried as a whole."""
    import duckdb

    if isinstance(exc, duckdb.TransactionException):
        return True
    message = str(exc)
    if isinstance(exc, duckdb.IOException) and "lock" in message.lower():
        return True  # another process holds the file
    # Every write here deletes its keys before inserting them, so a duplicate key means a
    # concurrent writer inserted the same key first (a retry replaces it, a real bug re-raises).
    return isinstance(exc, duckdb.ConstraintException) and "Duplicate key" in message


class DuckDBWarehouse(OutcomeStore):
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

    def publish_scores(
        self,
        target: ScoresSlice,
        scores_path: Path,
        expected_rows: int,
        pause_at: PausePoint = no_pause,
        context: pa.Table | None = None,
        reasons: ReasonsSlice | None = None,
        quarantine: QuarantineSlice | None = None,
    ) -> dict[str, Any]:
        """Audit the scores (and their reasons), then replace the slice, its reasons and the
        day's quarantined rows in one transaction; raises AuditFailed on bad scores or reasons.

        `context` (entity key and context columns, from the raw partition) is joined to the
        scores by key and published beside them under the table's output contract.
        """
        started, cpu_started = time.perf_counter(), time.process_time()
        self.migrate()
        scores = read_scores(scores_path, target.entity_key, target.classes)
        key = key_kind(scores, target.entity_key)
        self.ensure_scores_table(target.table, target.entity_key, key, target.probability, target.classes)
        raise_on_failures(audit_scores(scores, target, expected_rows), target)
        explained = audited_reasons(reasons, scores, target, scores_path)
        scores, columns = with_context(scores, target, context)
        self.ensure_contract(target, columns)
        # the audit proved run_date and model_version equal the slice's: only keys and scores are stored
        audited = scores.select(
            [target.entity_key, "score", *class_columns(target.classes), *names_of(columns)]
        )
        timings = {"read_audit": time.perf_counter() - started}
        pause_at("staged")
        attempts = 0

        def swap() -> int:
            nonlocal attempts
            attempts += 1
            companions = (reasons, explained, KEY_SQL[key])
            return self._swap(target, audited, expected_rows, pause_at, companions, quarantine)

        replaced: int = self._retrying(swap)
        timings["swap"] = time.perf_counter() - started - timings["read_audit"]
        pause_at("committed")
        return {
            "rows": expected_rows,
            "replaced_rows": replaced,
            "table": target.table,
            "attempts": attempts,
            "seconds": round(time.perf_counter() - started, 3),
            "stage_seconds": {name: round(value, 3) for name, value in timings.items()},
            "cpu_seconds": round(time.process_time() - cpu_started, 3),
        }

    def _swap(
        self,
        target: ScoresSlice,
        audited: pa.Table,
        expected_rows: int,
        pause_at: PausePoint,
        reasons: tuple[ReasonsSlice | None, pa.Table | None, str] = (None, None, ""),
        quarantine: QuarantineSlice | None = None,
    ) -> int:
        """Replace the slice's rows and its `published_slices` row in one transaction; returns rows replaced.

        The audited Arrow table is scanned by DuckDB in place (no second read of the files);
        the inserted count is checked against the audited one before the commit.
        """
        stored, k = f"{ROWS_SCHEMA}.{quoted(target.table)}", quoted(target.entity_key)
        key = [target.table, target.pipeline, target.run_date, target.model_version]
        with self.connect() as con:
            con.execute("BEGIN")
            try:
                owners = con.execute(
                    "SELECT DISTINCT pipeline FROM published_slices WHERE scores_table = ? AND pipeline <> ?",
                    [target.table, target.pipeline],
                ).fetchall()
                if owners:
                    raise SharedScoresTable(
                        f"table {target.table} already holds scores of pipeline {owners[0][0]!r}; "
                        f"give pipeline {target.pipeline!r} its own warehouse.scores_table"
                    )
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
                replace_duckdb_reasons(con, reasons[0], target, reasons[1], reasons[2])
                replace_duckdb_quarantine(con, quarantine, target, now())
                pause_at("swapped")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return int(deleted)

    def ensure_contract(self, target: ScoresSlice, columns: Columns) -> int:
        """Record `columns` as the table's next output contract version if they changed; returns its version."""
        stored = f"{ROWS_SCHEMA}.{quoted(target.table)}"

        def apply() -> int:
            with self.connect() as con:
                return apply_duckdb_contract(con, stored, target, columns)[0]

        return int(self._retrying(apply))

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


def drift_row(pipeline: str, run_date: date, model_version: int, r: dict[str, Any]) -> list[Any]:
    return [
        pipeline,
        run_date,
        model_version,
        r.get("segment", "all"),
        r["feature"],
        r["method"],
        r["statistic"],
        r["threshold"],
        r["drifted"],
    ]


def evidence_json(evidence: dict[str, Any]) -> str:
    return json.dumps(evidence, default=str, sort_keys=True)
