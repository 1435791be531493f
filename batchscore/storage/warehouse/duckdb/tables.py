"""DuckDB's scores tables: where the narrow slice rows live, the checks a table keeps (one
kind of entity key, its classes, one pipeline), and converting the earlier wide layout."""

from __future__ import annotations

from typing import Any

from batchscore.errors import PermanentFailure
from batchscore.storage.warehouse.contract import check_classes, other_key_kind, quoted

ROWS_SCHEMA = "slice_rows"
"""Where the narrow rows behind each scores view are stored (analysts query the views)."""


class SharedScoresTable(PermanentFailure, ValueError):
    """Two pipelines were configured to publish into one scores table."""


def table_type(con: Any, schema: str, name: str) -> str | None:
    """'BASE TABLE', 'VIEW', or None when `schema.name` does not exist."""
    row = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, name],
    ).fetchone()
    return None if row is None else str(row[0])


KEY_SQL = {"integer": "BIGINT", "string": "VARCHAR"}


def check_key_kind(con: Any, table: str, entity_key: str, key: str, classes: tuple[str, ...] = ()) -> None:
    """A scores table keeps one kind of entity key and the classes it was created for:
    publishing the other kind, or other classes, is refused."""
    columns = dict(
        con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
            "AND table_name = ? ORDER BY ordinal_position",
            [ROWS_SCHEMA, table],
        ).fetchall()
    )
    stored = columns.get(entity_key)
    if stored is not None and stored != KEY_SQL[key]:
        raise other_key_kind(table, entity_key, stored, key)
    check_classes(table, list(columns), classes)


def convert_wide_table(con: Any, table: str, entity_key: str) -> None:
    """Move a scores table of the earlier layout (all columns per row) into `slice_rows`.

    Runs in the caller's transaction. Slices published before `published_slices` existed get
    their record from the rows themselves, so the view shows every row the table held.
    """
    t, k = quoted(table), quoted(entity_key)
    pipelines = [row[0] for row in con.execute(f"SELECT DISTINCT pipeline FROM {t}").fetchall()]
    if len(pipelines) > 1:
        raise SharedScoresTable(
            f"table {table} holds scores of several pipelines {pipelines}; convert it by hand"
        )
    con.execute(
        f"""INSERT INTO published_slices
            SELECT '{table}', pipeline, run_date, model_version, any_value(model_name), any_value(run_id),
                   count(*), NULL, now(), NULL, NULL
            FROM {t} w
            WHERE NOT EXISTS (SELECT 1 FROM published_slices s WHERE s.scores_table = '{table}'
                AND s.pipeline = w.pipeline AND s.run_date = w.run_date AND s.model_version = w.model_version)
            GROUP BY pipeline, run_date, model_version"""
    )
    con.execute(
        f"""CREATE TABLE {ROWS_SCHEMA}.{t} ({k} BIGINT NOT NULL, run_date DATE NOT NULL,
            model_version INTEGER NOT NULL, score DOUBLE PRECISION NOT NULL)"""
    )
    con.execute(f"INSERT INTO {ROWS_SCHEMA}.{t} SELECT {k}, run_date, model_version, score FROM {t}")
    con.execute(f"DROP TABLE {t}")
