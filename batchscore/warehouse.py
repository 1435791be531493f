"""The warehouse analysts query: scores published write-audit-publish, plus run lineage.

`open_warehouse(url)` picks the implementation by URL. DuckDB (`duckdb:///path.duckdb`) is
the embedded default. Publishing a day stages the scores, audits them, and replaces the
(pipeline, run date, model version) slice in one transaction: readers see the old slice
or the new one, never a mix, and a rerun leaves exactly one set.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from batchscore.errors import PermanentFailure

log = logging.getLogger(__name__)

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class AuditFailed(PermanentFailure, RuntimeError):
    """Staged scores failed the audit; nothing was published."""


class UnsupportedWarehouse(ValueError):
    pass


def quoted(name: str) -> str:
    """A validated, double-quoted SQL identifier; anything unusual is rejected, not escaped."""
    if not IDENTIFIER.match(name):
        raise ValueError(f"invalid SQL identifier {name!r}: use lower-case letters, digits and _")
    return f'"{name}"'


@dataclass(frozen=True)
class ScoresSlice:
    """What one publish replaces: the scores of one pipeline, day and model version."""

    pipeline: str
    table: str
    entity_key: str
    run_date: date
    model_name: str
    model_version: int
    run_id: str


@dataclass
class RunRecord:
    """One attempt of one run, as stored in `scoring_runs`."""

    run_id: str
    try_number: int
    pipeline: str
    run_date: date
    model_name: str
    model_version: int | None
    status: str
    rows_in: int | None = None
    rows_out: int | None = None
    input_checksum: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    model_source: str | None = None


MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "runs, drift metrics and model events",
        [
            """CREATE TABLE scoring_runs (
                attempt_id VARCHAR PRIMARY KEY, run_id VARCHAR NOT NULL, try_number INTEGER NOT NULL,
                pipeline VARCHAR NOT NULL, run_date DATE NOT NULL, model_name VARCHAR NOT NULL,
                model_version INTEGER, status VARCHAR NOT NULL, rows_in BIGINT, rows_out BIGINT,
                input_checksum VARCHAR, seconds DOUBLE, rows_per_s DOUBLE, stage_seconds VARCHAR,
                error VARCHAR, recorded_at TIMESTAMPTZ NOT NULL)""",
            """CREATE TABLE drift_metrics (
                pipeline VARCHAR NOT NULL, run_date DATE NOT NULL, model_version INTEGER NOT NULL,
                feature VARCHAR NOT NULL, method VARCHAR NOT NULL, statistic DOUBLE NOT NULL,
                threshold DOUBLE NOT NULL, drifted BOOLEAN NOT NULL,
                PRIMARY KEY (pipeline, run_date, model_version, feature))""",
            """CREATE TABLE model_events (
                pipeline VARCHAR NOT NULL, run_date DATE NOT NULL, model_name VARCHAR NOT NULL,
                model_version INTEGER NOT NULL, event VARCHAR NOT NULL, decision VARCHAR NOT NULL,
                evidence VARCHAR NOT NULL, run_id VARCHAR NOT NULL, recorded_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (pipeline, run_date, model_version, event))""",
            """CREATE VIEW run_history AS
                SELECT pipeline, run_date, run_id, try_number, model_name, model_version, status,
                       rows_in, rows_out, round(seconds, 2) AS seconds, round(rows_per_s) AS rows_per_s,
                       input_checksum, error, recorded_at
                FROM scoring_runs ORDER BY recorded_at DESC""",
        ],
    ),
    (
        2,
        "drift metrics per segment; how each run's model version was chosen",
        [
            """CREATE TABLE drift_metrics_by_segment (
                pipeline VARCHAR NOT NULL, run_date DATE NOT NULL, model_version INTEGER NOT NULL,
                segment VARCHAR NOT NULL, feature VARCHAR NOT NULL, method VARCHAR NOT NULL,
                statistic DOUBLE PRECISION NOT NULL, threshold DOUBLE PRECISION NOT NULL,
                drifted BOOLEAN NOT NULL,
                PRIMARY KEY (pipeline, run_date, model_version, segment, feature))""",
            """INSERT INTO drift_metrics_by_segment
                SELECT pipeline, run_date, model_version, 'all', feature, method, statistic, threshold, drifted
                FROM drift_metrics""",
            "DROP TABLE drift_metrics",
            "ALTER TABLE drift_metrics_by_segment RENAME TO drift_metrics",
            "ALTER TABLE scoring_runs ADD COLUMN model_source VARCHAR",
        ],
    ),
]


class DuckDBWarehouse:
    """An embedded DuckDB file; one short-lived connection per operation."""

    def __init__(self, url: str):
        self.url = url
        self.path = Path(url.removeprefix("duckdb://"))

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[Any]:
        import duckdb

        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.path), read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    def migrate(self) -> list[int]:
        """Apply pending schema migrations, each in its own transaction; returns those applied."""
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
                for statement in statements:
                    con.execute(statement)
                con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, name, _now()])
                con.execute("COMMIT")
                applied.append(version)
        return applied

    def ensure_scores_table(self, con: Any, table: str, entity_key: str) -> None:
        t, k = quoted(table), quoted(entity_key)
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS {t} (
                {k} BIGINT NOT NULL, run_date DATE NOT NULL, pipeline VARCHAR NOT NULL,
                model_name VARCHAR NOT NULL, model_version INTEGER NOT NULL, score DOUBLE NOT NULL,
                run_id VARCHAR NOT NULL, PRIMARY KEY ({k}, run_date, model_version))"""
        )
        con.execute(
            f"""CREATE VIEW IF NOT EXISTS {quoted("latest_" + table)} AS
                SELECT * FROM {t}
                QUALIFY row_number() OVER (PARTITION BY {k} ORDER BY run_date DESC, model_version DESC) = 1"""
        )
        con.execute(
            f"""CREATE VIEW IF NOT EXISTS {quoted(table + "_by_day")} AS
                SELECT run_date, model_name, model_version, count(*) AS rows, avg(score) AS mean_score,
                       quantile_cont(score, 0.5) AS p50, quantile_cont(score, 0.9) AS p90,
                       avg(CASE WHEN score >= 0.5 THEN 1 ELSE 0 END) AS share_above_half
                FROM {t} GROUP BY ALL ORDER BY run_date, model_version"""
        )

    def publish_scores(self, target: ScoresSlice, scores_path: Path, expected_rows: int) -> dict[str, Any]:
        """Stage, audit, and swap one slice in a single transaction; raises AuditFailed on bad scores."""
        self.migrate()
        started = time.perf_counter()
        t, k = quoted(target.table), quoted(target.entity_key)
        files = sorted(str(p) for p in scores_path.glob("*.parquet"))
        if not files:
            raise AuditFailed(f"no score files in {scores_path}")
        with self.connect() as con:
            self.ensure_scores_table(con, target.table, target.entity_key)
            con.execute("BEGIN")
            try:
                con.execute(
                    f"""CREATE TEMP TABLE staged AS
                        SELECT CAST({k} AS BIGINT) AS {k}, CAST(? AS DATE) AS run_date, ? AS pipeline,
                               ? AS model_name, CAST(model_version AS INTEGER) AS model_version,
                               CAST(score AS DOUBLE) AS score, ? AS run_id,
                               CAST(run_date AS DATE) AS file_run_date
                        FROM read_parquet(?)""",
                    [target.run_date, target.pipeline, target.model_name, target.run_id, files],
                )
                failures = self._audit(con, k, target, expected_rows)
                if failures:
                    raise AuditFailed(
                        f"scores for {target.pipeline} {target.run_date} model v{target.model_version} "
                        f"failed the audit, nothing was published: {'; '.join(failures)}"
                    )
                deleted = con.execute(
                    f"DELETE FROM {t} WHERE run_date = ? AND model_version = ? AND pipeline = ?",
                    [target.run_date, target.model_version, target.pipeline],
                ).fetchone()[0]
                con.execute(
                    f"INSERT INTO {t} SELECT {k}, run_date, pipeline, model_name, model_version, score, run_id FROM staged"
                )
                con.execute("DROP TABLE staged")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return {
            "rows": expected_rows,
            "replaced_rows": int(deleted),
            "table": target.table,
            "seconds": round(time.perf_counter() - started, 3),
        }

    @staticmethod
    def _audit(con: Any, k: str, target: ScoresSlice, expected_rows: int) -> list[str]:
        rows, keys, null_scores, null_keys, out_of_range, versions, dates = con.execute(
            f"""SELECT count(*), count(DISTINCT {k}), count(*) - count(score), count(*) - count({k}),
                       count(*) FILTER (WHERE NOT (score BETWEEN 0 AND 1) OR isnan(score)),
                       count(*) FILTER (WHERE model_version IS DISTINCT FROM ?),
                       count(*) FILTER (WHERE file_run_date IS DISTINCT FROM run_date)
                FROM staged""",
            [target.model_version],
        ).fetchone()
        checks = [
            (rows == expected_rows, f"row count {rows} != features partition's {expected_rows}"),
            (keys == rows, f"{rows - keys} duplicate keys"),
            (null_keys == 0, f"{null_keys} null keys"),
            (null_scores == 0, f"{null_scores} null scores"),
            (out_of_range == 0, f"{out_of_range} scores outside [0, 1] or NaN"),
            (versions == 0, f"{versions} rows not scored by the pinned model v{target.model_version}"),
            (dates == 0, f"{dates} rows for another run date"),
        ]
        return [message for ok, message in checks if not ok]

    def record_run(self, run: RunRecord) -> None:
        """Append one attempt to `scoring_runs` (every attempt is kept)."""
        self.migrate()
        seconds = sum(run.stage_seconds.values()) if run.stage_seconds else None
        rate = run.rows_out / seconds if run.rows_out and seconds else None
        with self.connect() as con:
            con.execute(
                "INSERT INTO scoring_runs (attempt_id, run_id, try_number, pipeline, run_date, model_name, "
                "model_version, status, rows_in, rows_out, input_checksum, seconds, rows_per_s, "
                "stage_seconds, error, recorded_at, model_source) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    uuid.uuid4().hex,
                    run.run_id,
                    run.try_number,
                    run.pipeline,
                    run.run_date,
                    run.model_name,
                    run.model_version,
                    run.status,
                    run.rows_in,
                    run.rows_out,
                    run.input_checksum,
                    seconds,
                    rate,
                    json.dumps(run.stage_seconds),
                    run.error,
                    _now(),
                    run.model_source,
                ],
            )

    def replace_drift_metrics(
        self, pipeline: str, run_date: date, model_version: int, rows: list[dict[str, Any]]
    ) -> None:
        self.migrate()
        with self.connect() as con:
            con.execute("BEGIN")
            con.execute(
                "DELETE FROM drift_metrics WHERE pipeline = ? AND run_date = ? AND model_version = ?",
                [pipeline, run_date, model_version],
            )
            con.executemany(
                "INSERT INTO drift_metrics (pipeline, run_date, model_version, segment, feature, method, "
                "statistic, threshold, drifted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    [
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
                    for r in rows
                ],
            )
            con.execute("COMMIT")

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
        with self.connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO model_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    pipeline,
                    run_date,
                    model_name,
                    model_version,
                    event,
                    decision,
                    json.dumps(evidence, default=str, sort_keys=True),
                    run_id,
                    _now(),
                ],
            )

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read-only query; a warehouse used for the first time gets its schema first."""
        if not self.path.exists():
            self.migrate()
        with self.connect(read_only=True) as con:
            return list(con.execute(sql, params or []).fetchall())


def _now() -> datetime:
    return datetime.now(UTC)


def open_warehouse(url: str) -> DuckDBWarehouse:
    """The warehouse for a URL; `duckdb:///path/to/file.duckdb` is the one implemented so far."""
    if url.startswith("duckdb://"):
        return DuckDBWarehouse(url)
    raise UnsupportedWarehouse(f"warehouse URL {url!r}: only duckdb:/// is implemented so far")
