"""PostgreSQL roles: the writer publishes, the analyst reads and is refused every write."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date

import psycopg
import pytest
from psycopg import sql

from batchscore.cli import main
from batchscore.storage.warehouse import MIGRATIONS, ReasonsSlice, open_warehouse
from tests.warehouse.conftest import pg_admin
from tests.warehouse.slices import reasons_file, scores_file, target

pytestmark = pytest.mark.integration


@pytest.fixture
def role_names(pg_database: str) -> Iterator[tuple[str, str]]:
    """Writer and analyst role names for this test; the roles and what they own are dropped afterwards."""
    stem = f"bs_i4_{uuid.uuid4().hex[:8]}"
    names = (f"{stem}_writer", f"{stem}_analyst")
    yield names
    database = pg_database.rsplit("/", 1)[1]
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}", autocommit=True) as con:
        for name in names:
            if con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone():
                con.execute(sql.SQL("REASSIGN OWNED BY {} TO postgres").format(sql.Identifier(name)))
                con.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    with pg_admin() as con:
        for name in names:
            con.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def as_role(url: str, role: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://{role}@", 1)


def test_writer_publishes_and_analyst_only_reads(pg_url, role_names, tmp_path, monkeypatch, capsys):
    writer, analyst = role_names
    admin = open_warehouse(pg_url)
    admin.publish_scores(
        target("run-admin"), scores_file(tmp_path / "a", [1, 2], [0.1, 0.2]), expected_rows=2
    )

    monkeypatch.setenv("BATCHSCORE_WAREHOUSE_URL", pg_url)
    assert main(["warehouse", "init-roles", "--writer", writer, "--analyst", analyst]) == 0
    assert f"writer role {writer} can publish" in capsys.readouterr().out
    assert main(["warehouse", "init-roles", "--writer", writer, "--analyst", analyst]) == 0  # idempotent

    as_writer = open_warehouse(as_role(pg_url, writer))
    day = date(2026, 11, 22)
    new_day = scores_file(tmp_path / "b", [1, 2, 3], [0.3, 0.3, 0.3], run_date=day)
    reasons = ReasonsSlice(
        "score_reasons_churn", reasons_file(tmp_path / "br", new_day, [1, 2, 3], run_date=day)
    )
    published = as_writer.publish_scores(
        target("run-writer", day=day), new_day, expected_rows=3, reasons=reasons
    )
    as_writer.publish_scores(target("run-writer"), scores_file(tmp_path / "c", [1], [0.9]), expected_rows=1)
    assert as_writer.query(
        "SELECT run_date, count(*), min(run_id) FROM scores_churn GROUP BY 1 ORDER BY 1"
    ) == [
        (target().run_date, 1, "run-writer"),
        (day, 3, "run-writer"),
    ]

    schema = pg_url.rsplit("schema=", 1)[1]
    with psycopg.connect(as_role(pg_url, analyst).split("?")[0], autocommit=True) as con:
        con.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        assert con.execute("SELECT count(*) FROM scores_churn").fetchone() == (4,)
        assert con.execute("SELECT count(*) FROM latest_scores_churn").fetchone() == (3,)
        assert con.execute("SELECT count(*) FROM scores_churn_by_day").fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM run_history").fetchone() == (0,)
        # the reasons table was created by the writer after init-roles: default privileges
        assert con.execute("SELECT count(*) FROM score_reasons_churn").fetchone() == (9,)
        partition = sql.Identifier(published.partition)  # created after init-roles: default privileges
        assert con.execute(sql.SQL("SELECT count(*) FROM {}").format(partition)).fetchone() == (3,)
        for statement in (
            "INSERT INTO scores_churn VALUES (9, '2026-11-21', 'churn', 'm', 1, 0.5, 'x')",
            "DELETE FROM scores_churn",
            "DELETE FROM score_reasons_churn",
            "DELETE FROM published_slices",
            "INSERT INTO scoring_runs (attempt_id) VALUES ('x')",
            "CREATE TABLE sneaky (x INTEGER)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                con.execute(statement)
    assert admin.query("SELECT count(*) FROM scores_churn") == [(4,)]


def test_role_and_table_names_are_validated(pg_url, monkeypatch, capsys):
    monkeypatch.setenv("BATCHSCORE_WAREHOUSE_URL", pg_url)
    open_warehouse(pg_url).migrate()
    assert (
        main(["warehouse", "init-roles", "--writer", 'scores"; DROP TABLE x;--', "--analyst", "bs_i4_a"]) == 2
    )
    assert "invalid role name 'scores\"; DROP TABLE x;--'" in capsys.readouterr().err
    with pg_admin() as con:
        assert con.execute("SELECT 1 FROM pg_roles WHERE rolname LIKE 'scores%%'").fetchone() is None
    assert open_warehouse(pg_url).query("SELECT count(*) FROM schema_migrations") == [(len(MIGRATIONS),)]


def test_analyst_reads_the_outcome_views_the_writer_creates(pg_url, role_names, monkeypatch):
    writer, analyst = role_names
    monkeypatch.setenv("BATCHSCORE_WAREHOUSE_URL", pg_url)
    assert main(["warehouse", "init-roles", "--writer", writer, "--analyst", analyst]) == 0
    row = {
        "model_name": "m",
        "model_version": 1,
        "segment": "all",
        "metric": "roc_auc",
        "value": 0.8,
        "row_count": 5,
    }
    as_writer = open_warehouse(as_role(pg_url, writer))
    as_writer.replace_performance("churn", date(2026, 11, 18), "champion", "realized", "run-1", [row])
    schema = pg_url.rsplit("schema=", 1)[1]
    with psycopg.connect(as_role(pg_url, analyst).split("?")[0], autocommit=True) as con:
        con.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        assert con.execute("SELECT metric, value FROM model_performance_churn").fetchall() == [
            ("roc_auc", 0.8)
        ]
        assert con.execute("SELECT count(*) FROM score_stability_churn").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            con.execute("DELETE FROM model_performance")
