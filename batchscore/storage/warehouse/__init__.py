"""The warehouse analysts query: scores published write-audit-publish, plus run lineage.

`open_warehouse(url)` picks the backend by URL scheme: DuckDB (`duckdb:///path.duckdb`, the
embedded default) or PostgreSQL (`postgresql://user@host:port/db[?schema=name]`), each a
package behind the one `Warehouse` interface (`interface.py`). Publishing a day audits the
scores, stages them, and replaces the (pipeline, run date, model version) slice in one
transaction: readers see the old slice or the new one, never a mix, and a rerun leaves
exactly one set. `open_reader(url)` gives the read API's slice-consistent reader of the same.
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
from batchscore.storage.warehouse.interface import (
    Backend,
    PublishResult,
    Warehouse,
    backend_for,
    register_backend,
)
from batchscore.storage.warehouse.quarantine_store import QuarantineSlice
from batchscore.storage.warehouse.reasons import ReasonsSlice

if TYPE_CHECKING:
    from batchscore.storage.warehouse.reading import ScoresReader

__all__ = [
    "MIGRATIONS",
    "AuditFailed",
    "Backend",
    "InvalidIdentifier",
    "PausePoint",
    "PublishResult",
    "QuarantineSlice",
    "ReasonsSlice",
    "RunRecord",
    "ScoresSlice",
    "UnsupportedWarehouse",
    "Warehouse",
    "audit_scores",
    "open_reader",
    "open_warehouse",
    "quoted",
    "validate_identifier",
]


def _duckdb() -> Backend:
    from batchscore.storage.warehouse.duckdb import DuckDBWarehouse

    return Backend(DuckDBWarehouse, "duckdb:///path")


def _postgres() -> Backend:
    from batchscore.storage.warehouse.postgres import PostgresWarehouse

    return Backend(PostgresWarehouse, "postgresql://...")


register_backend(("duckdb",), _duckdb)
register_backend(("postgresql", "postgres"), _postgres)


def open_warehouse(url: str) -> Warehouse:
    """The warehouse for a URL: `duckdb:///path/to/file.duckdb` or `postgresql://user@host:port/db`."""
    return backend_for(url).warehouse(url)


def open_reader(url: str) -> ScoresReader:
    """The read API's reader for a warehouse URL (no schema migration, no write)."""
    return backend_for(url).warehouse(url).reader()
