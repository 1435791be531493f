"""The embedded DuckDB warehouse: one file, one short-lived connection per operation.

A DuckDB file is opened read-write by one process at a time, and transactions inside a
process are optimistic: two writers of the same row conflict at commit. Publishing a slice
writes its row in `published_slices` in the same transaction as the scores, so two
publishes of the same slice always conflict; the loser retries with backoff (bounded, the
last error re-raised) and then replaces the winner's set. Exactly one set remains.
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
from typing import Any

from batchscore.warehouse.contract import (
    MIGRATIONS,
    PausePoint,
    RunRecord,
    ScoresSlice,
    analyst_views,
    audit_scores,
    no_pause,
    now,
    quoted,
    raise_on_failures,
    read_scores,
    with_backoff,
)

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


class DuckDBWarehouse:
    """An embedded DuckDB file (`duckdb:///path/to/file.duckdb`)."""

    dialect = "duckdb"

    def __init__(self, url: str, retry_attempts: int = 8):
        self.url = url
        self.path = Path(url.removeprefix("duckdb://"))
        self.retry_attempts = retry_attempts
        self._migrated = False
        self._ready_tables: set[str] = set()
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

    def ensure_scores_table(self, table: str, entity_key: str) -> None:
        """Create the scores table and its analyst views if missing (views are refreshed once per process).

        No primary key: uniqueness per slice is audited before publishing and each slice is
        replaced whole, which keeps appends several times faster than maintaining an index.
        Tables created by earlier versions keep their primary key and work unchanged.
        """
        if table in self._ready_tables:
            return

        def create() -> None:
            with self.connect() as con:
                con.execute(
                    f"""CREATE TABLE IF NOT EXISTS {quoted(table)} (
                        {quoted(entity_key)} BIGINT NOT NULL, run_date DATE NOT NULL, pipeline VARCHAR NOT NULL,
                        model_name VARCHAR NOT NULL, model_version INTEGER NOT NULL,
                        score DOUBLE PRECISION NOT NULL, run_id VARCHAR NOT NULL)"""
                )
                for name, select in analyst_views(table, entity_key):
                    con.execute(f"CREATE OR REPLACE VIEW {quoted(name)} AS {select}")

        self._retrying(create)
        self._ready_tables.add(table)

    def publish_scores(
        self,
        target: ScoresSlice,
        scores_path: Path,
        expected_rows: int,
        pause_at: PausePoint = no_pause,
    ) -> dict[str, Any]:
        """Audit the scores, then replace the slice in one transaction; raises AuditFailed on bad scores."""
        started, cpu_started = time.perf_counter(), time.process_time()
        self.migrate()
        self.ensure_scores_table(target.table, target.entity_key)
        scores = read_scores(scores_path, target.entity_key)
        raise_on_failures(audit_scores(scores, target, expected_rows), target)
        files = sorted(str(path) for path in scores_path.glob("*.parquet"))
        timings = {"read_audit": time.perf_counter() - started}
        pause_at("staged")
        attempts = 0

        def swap() -> int:
            nonlocal attempts
            attempts += 1
            return self._swap(target, files, expected_rows, pause_at)

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

    def _swap(self, target: ScoresSlice, files: list[str], expected_rows: int, pause_at: PausePoint) -> int:
        """Replace the slice and its `published_slices` row in one transaction; returns rows replaced.

        The rows come from the audited Parquet files through DuckDB's own (parallel) reader;
        the inserted count is checked against the audited one before the commit.
        """
        t, k = quoted(target.table), quoted(target.entity_key)
        key = [target.table, target.pipeline, target.run_date, target.model_version]
        with self.connect() as con:
            con.execute("BEGIN")
            try:
                con.execute(
                    "DELETE FROM published_slices WHERE scores_table = ? AND pipeline = ? AND run_date = ? "
                    "AND model_version = ?",
                    key,
                )
                con.execute(
                    "INSERT INTO published_slices VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                    [*key, target.model_name, target.run_id, expected_rows, now()],
                )
                deleted = con.execute(
                    f"DELETE FROM {t} WHERE run_date = ? AND model_version = ? AND pipeline = ?",
                    [target.run_date, target.model_version, target.pipeline],
                ).fetchone()[0]
                inserted = con.execute(
                    f"""INSERT INTO {t} ({k}, run_date, pipeline, model_name, model_version, score, run_id)
                        SELECT {k}, CAST(? AS DATE), ?, ?, CAST(? AS INTEGER), score, ?
                        FROM read_parquet(?, hive_partitioning = false)""",
                    [
                        target.run_date,
                        target.pipeline,
                        target.model_name,
                        target.model_version,
                        target.run_id,
                        files,
                    ],
                ).fetchone()[0]
                if inserted != expected_rows:
                    raise RuntimeError(f"inserted {inserted} rows, expected {expected_rows}; rolled back")
                pause_at("swapped")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return int(deleted)

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
