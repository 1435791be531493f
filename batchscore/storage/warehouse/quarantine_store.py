"""`quarantine_<pipeline>`: the raw rows a day's gate held aside, published with the day's scores.

One row per held-aside input row: `run_date`, the entity key (as text: a null or duplicated
key is what some rows broke), `rule` (every rule the row broke, `; `-joined), `row_json` (the
whole row, PII columns hashed), `run_id` (the run that published it) and `quarantined_at`.
The champion's publish replaces the day's rows in the transaction that replaces its scores,
so a rerun replaces both or neither; a pipeline whose quarantine was turned off has the day's
old rows removed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from batchscore.storage.warehouse.contract import validate_identifier

if TYPE_CHECKING:
    import pyarrow as pa

COLUMNS = ("rule", "row_json")


@dataclass(frozen=True)
class QuarantineSlice:
    """The day's held-aside rows (`rows`: key, rule, row_json; None: the quarantine is off)."""

    table: str
    rows: pa.Table | None

    def __post_init__(self) -> None:
        validate_identifier(self.table, "quarantine table name")


def quarantine_ddl(table: str, key: str, text: str, stamp: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (run_date DATE NOT NULL, {key} {text}, rule {text} NOT NULL, "
        f"row_json {text} NOT NULL, run_id {text} NOT NULL, quarantined_at {stamp} NOT NULL)"
    )
