"""A DuckDB file is held by one writer process or several readers: opening it safely, and
telling a held file or a write conflict (retried with backoff) from a real error."""

from __future__ import annotations

import threading

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


def busy_file(exc: BaseException) -> bool:
    """The file is held by a writer (another process's lock, or this process's read-write handle)."""
    import duckdb

    if isinstance(exc, duckdb.ConnectionException):
        return "different configuration" in str(exc)
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()
