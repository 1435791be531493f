"""Warehouse fixtures: a DuckDB file per test, and a fresh PostgreSQL database per test session.

The PostgreSQL database is `bs_i4_<random>` on 127.0.0.1:5432 (dropped at teardown); each test
gets its own schema in it, so tests and CI reruns never see each other's tables.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchscore.warehouse import ScoresSlice, open_warehouse

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DAY = date(2026, 11, 21)


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


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=pytest.mark.integration)])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each warehouse test runs against DuckDB and against the real PostgreSQL."""
    if request.param == "duckdb":
        return f"duckdb://{tmp_path / 'w.duckdb'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def warehouse(warehouse_url: str):  # type: ignore[no-untyped-def]
    return open_warehouse(warehouse_url)


def scores_file(folder: Path, keys, scores, version=1, run_date=DAY) -> Path:  # type: ignore[no-untyped-def]
    """A scores partition as `jobs.score` writes it (entity key, score, model_version, run_date)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(keys)
    pq.write_table(
        pa.table(
            {
                "customer_id": pa.array(keys, pa.int64()),
                "score": pa.array(scores, pa.float64()),
                "model_version": pa.array([version] * n, pa.int64()),
                "run_date": pa.array([run_date] * n, pa.date32()),
            }
        ),
        folder / "part-0.parquet",
    )
    return folder


def target(run_id: str = "run-1", version: int = 1, day: date = DAY) -> ScoresSlice:
    return ScoresSlice("churn", "scores_churn", "customer_id", day, "churn_xgb", version, run_id)


SliceRows = Callable[..., list[tuple]]
