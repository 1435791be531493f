"""DuckDB scores tables of the earlier wide layout, and who may publish into a table."""

from __future__ import annotations

from typing import Any

from batchscore.errors import PermanentFailure
from batchscore.storage.warehouse.contract import quoted


class SharedScoresTable(PermanentFailure, ValueError):
    """Two pipelines were configured to publish into one scores table."""


def convert_wide_table(con: Any, table: str, entity_key: str, rows_schema: str) -> None:
    """Move a scores table of the earlier layout (all columns per row) into `rows_schema` (`slice_rows`).

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
        f"""CREATE TABLE {rows_schema}.{t} ({k} BIGINT NOT NULL, run_date DATE NOT NULL,
            model_version INTEGER NOT NULL, score DOUBLE PRECISION NOT NULL)"""
    )
    con.execute(f"INSERT INTO {rows_schema}.{t} SELECT {k}, run_date, model_version, score FROM {t}")
    con.execute(f"DROP TABLE {t}")
