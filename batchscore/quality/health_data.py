"""What the model-health page shows, read from the warehouse for one pipeline and day.

`load_health` queries the outcome tables (`model_performance`, `score_stability`), the day's
`drift_metrics`, `published_slices`, `run_history` and, when the pipeline has one, the
`score_reasons_<pipeline>` view, over the `window_days` up to the day. Every query is portable
SQL with `?` placeholders, so the same code reads DuckDB and PostgreSQL. A table with no rows
for the window is an empty list: the page says why, the loader never fails on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from batchscore.settings import PipelineSettings, due_at
from batchscore.storage.warehouse import quoted, validate_identifier

ALL_ROWS = "all"
NOT_SHADOW = "substr(scores_table, 1, 7) <> 'shadow_'"
ATTRIBUTION = "attribution"
"""drift_metrics rows of this method measure drift of the reason codes, not of a feature."""


class Queryable(Protocol):
    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True)
class MetricPoint:
    """One `model_performance` row of segment `all`."""

    run_date: date
    model_version: int
    role: str
    kind: str
    metric: str
    value: float | None
    lower: float | None
    upper: float | None
    row_count: int


@dataclass(frozen=True)
class StabilityPoint:
    """One `score_stability` row: a published day against the previous published day."""

    run_date: date
    model_version: int
    previous_run_date: date
    previous_model_version: int
    score_psi: float | None
    rank_correlation: float | None
    decision_threshold: float | None
    decision_flip_share: float | None
    shared_entities: int
    new_entities: int
    gone_entities: int


@dataclass(frozen=True)
class DriftRow:
    """One feature's drift on the whole day (segment `all`)."""

    feature: str
    method: str
    statistic: float
    threshold: float
    drifted: bool

    @property
    def ratio(self) -> float:
        """The statistic as a multiple of its threshold: above 1 is drifted."""
        return self.statistic / self.threshold


@dataclass(frozen=True)
class ReasonShare:
    """How many of the day's explained rows have `feature` as their first reason."""

    feature: str
    rows: int
    share: float


@dataclass(frozen=True)
class RunSummary:
    """The day's newest attempt, from `run_history`."""

    run_id: str
    status: str
    seconds: float | None
    rows_per_s: float | None
    recorded_at: datetime


@dataclass(frozen=True)
class HealthData:
    """Everything the health page of one pipeline and day shows."""

    pipeline: str
    day: date
    window_days: int
    task: str
    model_name: str
    model_version: int | None
    published_rows: int | None = None
    published_at: datetime | None = None
    due_at: datetime | None = None
    last_run: RunSummary | None = None
    performance: list[MetricPoint] = field(default_factory=list)
    stability: list[StabilityPoint] = field(default_factory=list)
    drift: list[DriftRow] = field(default_factory=list)
    score_drift: DriftRow | None = None
    reasons_enabled: bool = False
    reasons: list[ReasonShare] = field(default_factory=list)

    @property
    def first_day(self) -> date:
        return self.day - timedelta(days=self.window_days - 1)


def reasons_view(pipeline: str) -> str:
    """The view a pipeline's reason codes are read through."""
    return validate_identifier(f"score_reasons_{pipeline}", "reason codes view")


def load_health(
    warehouse: Queryable,
    pipeline: PipelineSettings,
    day: date,
    *,
    prediction_column: str,
    window_days: int = 30,
    model_version: int | None = None,
) -> HealthData:
    """The health page's data for `pipeline` on `day`, over the
    `window_days` up to it. `model_version` is the run's pinned version; without it, the
    version last published as champion that day."""
    name = pipeline.name
    first = day - timedelta(days=window_days - 1)
    published = published_versions(warehouse, name, first, day)
    version = model_version or (published[day][0] if day in published else None)
    version = version or latest_drift_version(warehouse, name, day)
    slice_ = day_slice(warehouse, name, day, version) if version else None
    drift = drift_rows(warehouse, name, day, version) if version else []
    enabled = has_view(warehouse, reasons_view(name))
    return HealthData(
        pipeline=name,
        day=day,
        window_days=window_days,
        task=pipeline.model.task,
        model_name=pipeline.model.name,
        model_version=version,
        published_rows=slice_[0] if slice_ else None,
        published_at=slice_[1] if slice_ else None,
        due_at=due_at(day, pipeline.schedule.publish_by_minutes, pipeline.schedule.timezone),
        last_run=last_run(warehouse, name, day),
        performance=performance(warehouse, name, first, day, {d: v for d, (v, _, _) in published.items()}),
        stability=stability(warehouse, name, first, day),
        drift=[row for row in drift if row.feature != prediction_column],
        score_drift=next((row for row in drift if row.feature == prediction_column), None),
        reasons_enabled=enabled,
        reasons=reason_shares(warehouse, name, day, version) if enabled and version else [],
    )


def published_versions(
    warehouse: Queryable, pipeline: str, first: date, last: date
) -> dict[date, tuple[int, int, datetime]]:
    """Per day: (model version, rows, published at) of the champion slice published last."""
    rows = warehouse.query(
        "SELECT run_date, model_version, row_count, published_at FROM published_slices "
        f"WHERE pipeline = ? AND run_date BETWEEN ? AND ? AND {NOT_SHADOW} "
        "ORDER BY run_date, published_at",
        [pipeline, first, last],
    )
    return {run_date: (int(version), int(count), at) for run_date, version, count, at in rows}


def day_slice(warehouse: Queryable, pipeline: str, day: date, version: int) -> tuple[int, datetime] | None:
    """(rows, published at) of the day's champion slice of `version`, if it was published."""
    rows = warehouse.query(
        "SELECT row_count, published_at FROM published_slices "
        f"WHERE pipeline = ? AND run_date = ? AND model_version = ? AND {NOT_SHADOW} "
        "ORDER BY published_at DESC LIMIT 1",
        [pipeline, day, version],
    )
    return (int(rows[0][0]), rows[0][1]) if rows else None


def latest_drift_version(warehouse: Queryable, pipeline: str, day: date) -> int | None:
    """The highest model version with drift metrics on the day (a day measured, not published)."""
    rows = warehouse.query(
        "SELECT max(model_version) FROM drift_metrics WHERE pipeline = ? AND run_date = ?", [pipeline, day]
    )
    return int(rows[0][0]) if rows and rows[0][0] is not None else None


def last_run(warehouse: Queryable, pipeline: str, day: date) -> RunSummary | None:
    rows = warehouse.query(
        "SELECT run_id, status, seconds, rows_per_s, recorded_at FROM run_history "
        "WHERE pipeline = ? AND run_date = ? ORDER BY recorded_at DESC LIMIT 1",
        [pipeline, day],
    )
    return RunSummary(*rows[0]) if rows else None


def performance(
    warehouse: Queryable, pipeline: str, first: date, last: date, champions: dict[date, int]
) -> list[MetricPoint]:
    """Segment `all` metrics of the window; on a day with a published champion, the champion
    rows of that version only (a backfill with another version does not mix in)."""
    rows = warehouse.query(
        "SELECT run_date, model_version, role, kind, metric, value, lower, upper, row_count "
        "FROM model_performance WHERE pipeline = ? AND run_date BETWEEN ? AND ? AND segment = ? "
        "ORDER BY run_date, role, kind, metric, model_version",
        [pipeline, first, last, ALL_ROWS],
    )
    points = [MetricPoint(*row) for row in rows]
    return [
        p
        for p in points
        if p.role != "champion" or champions.get(p.run_date, p.model_version) == p.model_version
    ]


def stability(warehouse: Queryable, pipeline: str, first: date, last: date) -> list[StabilityPoint]:
    rows = warehouse.query(
        "SELECT run_date, model_version, previous_run_date, previous_model_version, score_psi, "
        "rank_correlation, decision_threshold, decision_flip_share, shared_entities, new_entities, "
        "gone_entities FROM score_stability WHERE pipeline = ? AND run_date BETWEEN ? AND ? "
        "ORDER BY run_date",
        [pipeline, first, last],
    )
    return [StabilityPoint(*row) for row in rows]


def drift_rows(warehouse: Queryable, pipeline: str, day: date, version: int) -> list[DriftRow]:
    """The day's feature drift on all rows, most drifted (relative to its threshold) first;
    attribution drift is left out (it is the reason codes' drift, not a feature's)."""
    rows = warehouse.query(
        "SELECT feature, method, statistic, threshold, drifted FROM drift_metrics "
        "WHERE pipeline = ? AND run_date = ? AND model_version = ? AND segment = ? AND method <> ?",
        [pipeline, day, version, ALL_ROWS, ATTRIBUTION],
    )
    drift = [DriftRow(f, m, float(s), float(t), bool(d)) for f, m, s, t, d in rows]
    return sorted(drift, key=lambda row: (-row.ratio, row.feature))


def has_view(warehouse: Queryable, name: str) -> bool:
    """Whether the warehouse's own schema has a table or view `name` (information_schema,
    which DuckDB and PostgreSQL both have)."""
    rows = warehouse.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND table_name = ?",
        [name],
    )
    return bool(rows and rows[0][0])


def reason_shares(warehouse: Queryable, pipeline: str, day: date, version: int) -> list[ReasonShare]:
    """Per feature, the share of the day's explained rows that have it as their first reason."""
    rows = warehouse.query(
        f"SELECT feature, count(*) FROM {quoted(reasons_view(pipeline))} WHERE run_date = ? "
        'AND model_version = ? AND "rank" = 1 GROUP BY feature',
        [day, version],
    )
    total = sum(int(count) for _, count in rows)
    shares = [ReasonShare(str(f), int(count), int(count) / total) for f, count in rows]
    return sorted(shares, key=lambda s: (-s.rows, s.feature))
