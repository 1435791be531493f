"""The warehouse analysts query: scores published write-audit-publish, plus run lineage.

`open_warehouse(url)` picks the implementation by URL: DuckDB (`duckdb:///path.duckdb`, the
embedded default) or PostgreSQL (`postgresql://user@host:port/db[?schema=name]`). Both have
the same methods. Publishing a day audits the scores, stages them, and replaces the
(pipeline, run date, model version) slice in one transaction: readers see the old slice or
the new one, never a mix, and a rerun leaves exactly one set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchscore.storage.warehouse.contract import (
    MIGRATIONS,
    AuditFailed,
    InvalidIdentifier,
    PausePoint,
    RunRecord,
    ScoresSlice,
    UnsupportedWarehouse,
    audit_scores,
    quoted,
    validate_identifier,
)
from batchscore.storage.warehouse.duckdb_store import DuckDBWarehouse
from batchscore.storage.warehouse.quarantine_store import QuarantineSlice
from batchscore.storage.warehouse.reasons import ReasonsSlice

if TYPE_CHECKING:
    from batchscore.storage.warehouse.postgres_store import PostgresWarehouse

    Warehouse = DuckDBWarehouse | PostgresWarehouse

__all__ = [
    "MIGRATIONS",
    "AuditFailed",
    "DuckDBWarehouse",
    "InvalidIdentifier",
    "PausePoint",
    "QuarantineSlice",
    "ReasonsSlice",
    "RunRecord",
    "ScoresSlice",
    "UnsupportedWarehouse",
    "audit_scores",
    "open_warehouse",
    "quoted",
    "validate_identifier",
]


def open_warehouse(url: str) -> Warehouse:
    """The warehouse for a URL: `duckdb:///path/to/file.duckdb` or `postgresql://user@host:port/db`."""
    if url.startswith("duckdb://"):
        return DuckDBWarehouse(url)
    if url.startswith(("postgresql://", "postgres://")):
        from batchscore.storage.warehouse.postgres_store import PostgresWarehouse

        return PostgresWarehouse(url)
    raise UnsupportedWarehouse(f"warehouse URL {url!r}: expected duckdb:///path or postgresql://...")
