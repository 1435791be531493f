"""Warehouse fixtures: a DuckDB file per test, and a fresh PostgreSQL database per test session.

The PostgreSQL database is `bs_i4_<random>` on 127.0.0.1:5432 (dropped at teardown); each test
gets its own schema in it, so tests and CI reruns never see each other's tables.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchscore.storage.warehouse import open_warehouse

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def pg_admin(autocommit: bool = True):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=autocommit)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh database for this test session; its URL without a schema."""
    from psycopg import sql

    name = f"bs_i4_{uuid.uuid4().hex[:10]}"
    with pg_admin() as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with pg_admin() as con:
        con.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A PostgreSQL warehouse URL with a schema of its own for this test."""
    return f"{pg_database}?schema=t_{uuid.uuid4().hex[:12]}"


TESTED_BACKENDS = ["duckdb", pytest.param("postgresql", marks=pytest.mark.integration)]
"""Every registered warehouse backend, by URL scheme: each runs the whole shared suite
(`tests/warehouse/test_interface.py` fails when a registered backend is missing here)."""


@pytest.fixture(params=TESTED_BACKENDS)
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each warehouse test runs against every backend: a DuckDB file, the real PostgreSQL."""
    if request.param == "duckdb":
        return f"duckdb://{tmp_path / 'w.duckdb'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def warehouse(warehouse_url: str):  # type: ignore[no-untyped-def]
    return open_warehouse(warehouse_url)
