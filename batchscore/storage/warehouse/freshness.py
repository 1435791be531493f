"""Freshness: whether each pipeline has published the day it owes by its deadline.

Migration 4 records each run's deadline rule (`schedule.publish_by` as minutes after local
midnight, and its time zone) in `scoring_runs`, and creates `pipeline_freshness`: per pipeline,
its last published day and model version, the newest run's status, when the next day is due
(`next_due_at`, the day after the last published one at `publish_by` local time) and `is_late`.
A pipeline without `publish_by` has no due time and is never late. Portable SQL: DuckDB (ICU)
and PostgreSQL both read `timestamp AT TIME ZONE zone` as local time, giving a timestamptz.
"""

from __future__ import annotations

FRESHNESS_VIEW = """CREATE VIEW pipeline_freshness AS
    WITH runs AS (
        SELECT pipeline, status, publish_by_minutes, timezone, recorded_at,
               row_number() OVER (PARTITION BY pipeline ORDER BY recorded_at DESC) AS recency
        FROM scoring_runs),
    slices AS (
        SELECT pipeline, scores_table, run_date, model_name, model_version, published_at,
               row_number() OVER (PARTITION BY pipeline ORDER BY run_date DESC, published_at DESC)
                   AS recency
        FROM published_slices WHERE substr(scores_table, 1, 7) <> 'shadow_'),
    due AS (
        SELECT r.pipeline, s.scores_table, s.run_date AS last_published_day, s.model_name,
               s.model_version, s.published_at, r.status AS last_run_status,
               r.recorded_at AS last_run_at, r.publish_by_minutes, r.timezone,
               (CAST(s.run_date AS TIMESTAMP) + INTERVAL '1 day'
                   + r.publish_by_minutes * INTERVAL '1 minute') AT TIME ZONE r.timezone
                   AS next_due_at
        FROM runs r LEFT JOIN slices s ON s.pipeline = r.pipeline AND s.recency = 1
        WHERE r.recency = 1)
    SELECT pipeline, scores_table, last_published_day, model_name, model_version, published_at,
           last_run_status, last_run_at, next_due_at,
           COALESCE(now() > next_due_at, FALSE) AS is_late
    FROM due"""

FRESHNESS_MIGRATION: tuple[int, str, list[str]] = (
    4,
    "each run's deadline rule; the pipeline_freshness view",
    [
        "ALTER TABLE scoring_runs ADD COLUMN publish_by_minutes INTEGER",
        "ALTER TABLE scoring_runs ADD COLUMN timezone VARCHAR",
        FRESHNESS_VIEW,
    ],
)
