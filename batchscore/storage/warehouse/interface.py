"""The one interface every warehouse backend provides, and the publish sequence they share.

A backend (one package under `batchscore.storage.warehouse`: `duckdb`, `postgres`) subclasses
`Warehouse` and registers itself with `register_backend` for its URL schemes. Publishing a
slice is the same five steps everywhere, written once here:

    read the scores -> audit them (and their reasons) -> join their context columns
        -> record the table's output contract -> swap the slice in, in ONE transaction

Only the last step is the backend's own (`_swap`): how a dialect replaces a slice atomically
(DuckDB: delete and insert in a retried optimistic transaction; PostgreSQL: COPY into a fresh
partition and attach it). The read API reads through the backend's `ScoresReader`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from batchscore.storage.warehouse.contract import (
    PausePoint,
    RunRecord,
    ScoresSlice,
    UnsupportedWarehouse,
    audit_scores,
    key_kind,
    no_pause,
    raise_on_failures,
    read_scores,
)
from batchscore.storage.warehouse.outcome_store import Executor, OutcomeWrites
from batchscore.storage.warehouse.output_contract import Columns, with_context
from batchscore.storage.warehouse.quarantine_store import QuarantineSlice
from batchscore.storage.warehouse.reasons import ReasonsSlice, audited_reasons

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from batchscore.storage.warehouse.reading import ScoresReader

T = TypeVar("T")


@dataclass(frozen=True)
class StagedSlice:
    """A slice read, audited and joined to its context: what a backend's `_swap` publishes."""

    target: ScoresSlice
    scores: pa.Table
    """the audited scores with their context columns (key, run_date, model_version, score, ...)"""
    key_kind: str
    """`integer` or `string`: the entity key's kind"""
    expected_rows: int
    context: Columns
    """the context columns these scores carry (this publish's output contract)"""
    stored: Columns
    """every context column the table stores (all contract versions)"""
    reasons: ReasonsSlice | None
    explained: pa.Table | None
    """the audited reasons rows (None: none published with this slice)"""
    quarantine: QuarantineSlice | None


@dataclass(frozen=True)
class SwapOutcome:
    """What a backend's swap reports: rows it replaced, its timings, and dialect details."""

    replaced_rows: int
    stage_seconds: Mapping[str, float]
    attempts: int | None = None
    """DuckDB: optimistic transactions tried (conflicts retry)"""
    partition: str | None = None
    """PostgreSQL: the partition now holding the slice"""


@dataclass(frozen=True)
class PublishResult:
    """One publish: rows published and replaced, where, and how long each step took."""

    rows: int
    replaced_rows: int
    table: str
    seconds: float
    stage_seconds: Mapping[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    attempts: int | None = None
    partition: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON/XCom form (dialect details only where the backend has them)."""
        out: dict[str, Any] = {"rows": self.rows, "replaced_rows": self.replaced_rows, "table": self.table}
        if self.attempts is not None:
            out["attempts"] = self.attempts
        if self.partition is not None:
            out["partition"] = self.partition
        return out | {
            "seconds": self.seconds,
            "stage_seconds": dict(self.stage_seconds),
            "cpu_seconds": self.cpu_seconds,
        }


class Warehouse(OutcomeWrites, ABC):
    """What every backend provides; `publish_scores` is the shared write-audit-publish sequence."""

    dialect: ClassVar[str]
    audit_checks_duplicates: ClassVar[bool] = True
    """False where the swap itself refuses duplicate keys (PostgreSQL's unique index), saving a sort."""

    url: str

    @abstractmethod
    def migrate(self) -> list[int]:
        """Apply pending schema migrations (once per process); returns the versions applied."""

    @abstractmethod
    def ensure_scores_table(
        self,
        table: str,
        entity_key: str,
        key: str = "integer",
        probability: bool = True,
        classes: tuple[str, ...] = (),
    ) -> None:
        """Create the scores table and its analyst views if missing; refuse another key kind or classes."""

    @abstractmethod
    def ensure_contract(self, target: ScoresSlice, columns: Columns) -> Columns:
        """Record `columns` as the table's next output contract version if they changed; returns
        every context column the table stores."""

    @abstractmethod
    def _swap(self, staged: StagedSlice, pause_at: PausePoint) -> SwapOutcome:
        """Replace the slice (and its reasons and the day's quarantined rows) in one transaction."""

    def _prepare_companions(self, staged: StagedSlice) -> None:
        """Create the reasons and quarantine tables outside the swap, where a dialect needs that."""

    @abstractmethod
    def record_run(self, run: RunRecord) -> None:
        """Append one attempt to `scoring_runs` (every attempt is kept)."""

    @abstractmethod
    def replace_drift_metrics(
        self, pipeline: str, run_date: date, model_version: int, rows: list[dict[str, Any]]
    ) -> None:
        """Replace the drift metrics of (pipeline, day, version) with `rows`."""

    @abstractmethod
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
        """Store a decision once per (pipeline, day, version, event)."""

    @abstractmethod
    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read-only query (`?` placeholders on every backend)."""

    @abstractmethod
    def query_columns(self, sql: str, params: list[Any] | None = None) -> dict[str, np.ndarray]:
        """A read-only query's result as one numpy array per column (`?` placeholders)."""

    @abstractmethod
    def _outcome_write(self, pipeline: str, lock: tuple[object, ...], write: Callable[[Executor], T]) -> T:
        """Run `write` in one transaction (the pipeline's outcome views made sure of first)."""

    @abstractmethod
    def reader(self) -> ScoresReader:
        """The read API's slice-consistent reader of this warehouse."""

    def publish_scores(
        self,
        target: ScoresSlice,
        scores_path: Path,
        expected_rows: int,
        pause_at: PausePoint = no_pause,
        context: pa.Table | None = None,
        reasons: ReasonsSlice | None = None,
        quarantine: QuarantineSlice | None = None,
    ) -> PublishResult:
        """Audit the scores (and their reasons), join `context` (entity key and context columns of
        the raw partition) under the table's output contract, then replace the slice, its reasons
        and the day's quarantined rows in one transaction; raises AuditFailed on bad input,
        before anything is written."""
        started, cpu_started = time.perf_counter(), time.process_time()
        staged = self._stage(target, scores_path, expected_rows, context, reasons, quarantine)
        read_audit = time.perf_counter() - started
        swapped = self._swap(staged, pause_at)
        pause_at("committed")
        return PublishResult(
            rows=expected_rows,
            replaced_rows=swapped.replaced_rows,
            table=target.table,
            seconds=round(time.perf_counter() - started, 3),
            stage_seconds={
                name: round(value, 3)
                for name, value in {"read_audit": read_audit, **swapped.stage_seconds}.items()
            },
            cpu_seconds=round(time.process_time() - cpu_started, 3),
            attempts=swapped.attempts,
            partition=swapped.partition,
        )

    def _stage(
        self,
        target: ScoresSlice,
        scores_path: Path,
        expected_rows: int,
        context: pa.Table | None,
        reasons: ReasonsSlice | None,
        quarantine: QuarantineSlice | None,
    ) -> StagedSlice:
        """Read, audit, join context, record the contract: everything before the swap (no slice written)."""
        self.migrate()
        scores = read_scores(scores_path, target.entity_key, target.classes)
        key = key_kind(scores, target.entity_key)
        self.ensure_scores_table(target.table, target.entity_key, key, target.probability, target.classes)
        failures = audit_scores(scores, target, expected_rows, check_duplicates=self.audit_checks_duplicates)
        raise_on_failures(failures, target)
        explained = audited_reasons(reasons, scores, target, scores_path)
        scores, columns = with_context(scores, target, context)
        stored = self.ensure_contract(target, columns)
        staged = StagedSlice(
            target, scores, key, expected_rows, columns, stored, reasons, explained, quarantine
        )
        self._prepare_companions(staged)
        return staged


@dataclass(frozen=True)
class Backend:
    """A warehouse backend: how to open it (its `reader()` gives the read API's reader)."""

    warehouse: Callable[[str], Warehouse]
    describe: str
    """the URL form, for error messages (`duckdb:///path`)"""


BACKENDS: dict[str, Callable[[], Backend]] = {}
"""URL scheme -> a loader of its backend (imported on first use: psycopg only when asked for)."""


def register_backend(schemes: tuple[str, ...], load: Callable[[], Backend]) -> None:
    for scheme in schemes:
        BACKENDS[scheme] = load


def backend_for(url: str) -> Backend:
    """The backend serving a warehouse URL; UnsupportedWarehouse names the forms known."""
    scheme = url.partition("://")[0] if "://" in url else ""
    load = BACKENDS.get(scheme)
    if load is None:
        known = sorted({load().describe for load in BACKENDS.values()})
        raise UnsupportedWarehouse(f"warehouse URL {url!r}: expected {' or '.join(known)}")
    return load()
