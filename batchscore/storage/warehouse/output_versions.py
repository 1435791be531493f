"""Migration 8: `output_contracts`, the versions of each scores table's output contract.

One row per (scores table, version): `columns` is a JSON list of the context columns that
version publishes beside the scores, in order, each `{"name": ..., "kind": ...}` with a kind
of `KIND_SQL`. The logic that writes it is `output_contract`.
"""

from __future__ import annotations

OUTPUT_CONTRACT_MIGRATION: tuple[int, str, list[str]] = (
    8,
    "versioned output contracts: the context columns each scores table publishes",
    [
        """CREATE TABLE output_contracts (
            scores_table VARCHAR NOT NULL, version INTEGER NOT NULL, columns VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (scores_table, version))""",
    ],
)

KIND_SQL = {
    "integer": {"duckdb": "BIGINT", "postgresql": "BIGINT"},
    "floating": {"duckdb": "DOUBLE", "postgresql": "DOUBLE PRECISION"},
    "string": {"duckdb": "VARCHAR", "postgresql": "TEXT"},
    "boolean": {"duckdb": "BOOLEAN", "postgresql": "BOOLEAN"},
    "date": {"duckdb": "DATE", "postgresql": "DATE"},
}
"""The kinds of context column a contract may hold, and how each warehouse stores them."""
