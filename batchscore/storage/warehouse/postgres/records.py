"""The PostgreSQL warehouse's records beside the scores: run attempts, drift metrics, model events."""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from datetime import date
from typing import Any

from batchscore.storage.warehouse.contract import RunRecord, now
from batchscore.storage.warehouse.postgres.sql import lock_key
from batchscore.storage.warehouse.records import drift_row, evidence_json


class PostgresRecords:
    """Appends and per-key replacements; the store provides `migrate` and `connect`."""

    def migrate(self) -> list[int]:
        raise NotImplementedError

    def connect(self, autocommit: bool = False, read_only: bool = False) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def record_run(self, run: RunRecord) -> None:
        """Append one attempt to `scoring_runs` (every attempt is kept)."""
        self.migrate()
        row = run.row(uuid.uuid4().hex)
        with self.connect() as con:
            con.execute(f"INSERT INTO scoring_runs VALUES ({', '.join(['%s'] * len(row))})", row)

    def replace_drift_metrics(
        self, pipeline: str, run_date: date, model_version: int, rows: list[dict[str, Any]]
    ) -> None:
        self.migrate()
        with self.connect() as con:
            con.execute(
                "DELETE FROM drift_metrics WHERE pipeline = %s AND run_date = %s AND model_version = %s",
                [pipeline, run_date, model_version],
            )
            with con.cursor() as cur:
                cur.executemany(
                    "INSERT INTO drift_metrics VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [drift_row(pipeline, run_date, model_version, r) for r in rows],
                )

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
                "SELECT pg_advisory_xact_lock(%s)", [lock_key("event", pipeline, run_date, model_version)]
            )
            con.execute(
                "DELETE FROM model_events WHERE pipeline = %s AND run_date = %s AND model_version = %s AND event = %s",
                [pipeline, run_date, model_version, event],
            )
            con.execute(
                "INSERT INTO model_events VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    pipeline,
                    run_date,
                    model_name,
                    model_version,
                    event,
                    decision,
                    evidence_json(evidence),
                    run_id,
                    now(),
                ],
            )
