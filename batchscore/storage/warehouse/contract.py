"""What every warehouse shares: the publish contract, the audit, the schema migrations.

The audit is a pure function of the scores (an Arrow table) and the slice they are meant
for, so both warehouses reject bad scores with the same message before writing anything.
The migrations are portable SQL (DuckDB and PostgreSQL), applied in order and recorded in
`schema_migrations`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from batchscore.errors import PermanentFailure
from batchscore.storage.warehouse.freshness import FRESHNESS_MIGRATION
from batchscore.storage.warehouse.lineage import LINEAGE_MIGRATION
from batchscore.storage.warehouse.multiclass import (
    audit_multiclass,
    check_class_names,
    class_columns,
    describe_classes,
    select_sql,
    share_columns_sql,
    stored_classes,
)
from batchscore.storage.warehouse.outcomes import OUTCOMES_MIGRATION
from batchscore.storage.warehouse.output_versions import OUTPUT_CONTRACT_MIGRATION

if TYPE_CHECKING:
    import pyarrow as pa

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

PausePoint = Callable[[str], None]
"""Called with the name of each point a publish passes ("copying", "staged", "swapped",
"committed"); tests use it to kill or cut the publisher at a precise moment."""


class AuditFailed(PermanentFailure, RuntimeError):
    """Staged scores failed the audit; nothing was published."""


class UnsupportedWarehouse(ValueError):
    """The warehouse URL names no implemented warehouse, or is malformed."""


class InvalidIdentifier(PermanentFailure, ValueError):
    """A table, schema or role name from configuration is not a plain SQL identifier."""


def validate_identifier(name: str, what: str = "SQL identifier") -> str:
    """Return `name` if it is a plain lower-case identifier; anything unusual is rejected, not escaped."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise InvalidIdentifier(
            f"invalid {what} {name!r}: use 1-63 lower-case letters, digits and _, starting with a letter"
        )
    return name


def quoted(name: str) -> str:
    """A validated, double-quoted SQL identifier (for DuckDB; PostgreSQL uses psycopg's sql.Identifier)."""
    return f'"{validate_identifier(name)}"'


@dataclass(frozen=True)
class ScoresSlice:
    """What one publish replaces: the scores of one pipeline, day and model version."""

    pipeline: str
    table: str
    entity_key: str
    run_date: date
    model_name: str
    model_version: int
    run_id: str
    task: str = "binary"
    """binary and multiclass scores are probabilities in [0, 1]; regression scores any finite value."""
    classes: tuple[str, ...] = ()
    """multiclass only: the class names, in the model's output order (one `p_<class>` column each)."""
    input_checksum: str | None = None
    """lineage, recorded with the slice: the raw partition's checksum the scores come from"""
    scores_fingerprint: str | None = None
    """lineage: the score stage's fingerprint (`batchscore.storage.reuse`), which tells a rerun is a no-op"""

    def __post_init__(self) -> None:
        validate_identifier(self.table, "table name")
        validate_identifier(self.entity_key, "entity key column")
        object.__setattr__(self, "classes", tuple(self.classes))
        problem = check_class_names(self.classes)
        if problem:
            raise InvalidIdentifier(problem)
        if self.classes and self.task != "multiclass":
            raise ValueError(f"classes apply to multiclass scores only (task is {self.task})")

    @property
    def probability(self) -> bool:
        return self.task != "regression"

    def describe(self) -> str:
        return f"{self.pipeline} {self.run_date} model v{self.model_version}"

    def lineage(self) -> list[str | None]:
        """The slice's `published_slices` lineage values, in column order (migration 7)."""
        return [self.input_checksum, self.scores_fingerprint]


@dataclass
class RunRecord:
    """One attempt of one run, as stored in `scoring_runs`."""

    run_id: str
    try_number: int
    pipeline: str
    run_date: date
    model_name: str
    model_version: int | None
    status: str
    rows_in: int | None = None
    rows_out: int | None = None
    input_checksum: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    cpu_seconds: float | None = None
    model_source: str | None = None
    publish_by_minutes: int | None = None  # the pipeline's deadline when this attempt ran
    timezone: str | None = None

    def row(self, attempt_id: str) -> list[object]:
        """The values of one `scoring_runs` row, in column order (migrations 1 to 4)."""
        seconds = sum(self.stage_seconds.values()) if self.stage_seconds else None
        rate = self.rows_out / seconds if self.rows_out and seconds else None
        per_million = self.cpu_seconds / self.rows_out * 1e6 if self.cpu_seconds and self.rows_out else None
        return [
            attempt_id,
            self.run_id,
            self.try_number,
            self.pipeline,
            self.run_date,
            self.model_name,
            self.model_version,
            self.status,
            self.rows_in,
            self.rows_out,
            self.input_checksum,
            seconds,
            rate,
            json.dumps(self.stage_seconds),
            self.error,
            now(),
            self.cpu_seconds,
            per_million,
            self.model_source,
            self.publish_by_minutes,
            self.timezone,
        ]


MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "runs, drift metrics and model events",
        [
            """CREATE TABLE scoring_runs (
                attempt_id VARCHAR PRIMARY KEY, run_id VARCHAR NOT NULL, try_number INTEGER NOT NULL,
                pipeline VARCHAR NOT NULL, run_date DATE NOT NULL, model_name VARCHAR NOT NULL,
                model_version INTEGER, status VARCHAR NOT NULL, rows_in BIGINT, rows_out BIGINT,
                input_checksum VARCHAR, seconds DOUBLE PRECISION, rows_per_s DOUBLE PRECISION,
                stage_seconds VARCHAR, error VARCHAR, recorded_at TIMESTAMPTZ NOT NULL)""",
            """CREATE TABLE drift_metrics (
                pipeline VARCHAR NOT NULL, run_date DATE NOT NULL, model_version INTEGER NOT NULL,
                feature VARCHAR NOT NULL, method VARCHAR NOT NULL, statistic DOUBLE PRECISION NOT NULL,
                threshold DOUBLE PRECISION NOT NULL, drifted BOOLEAN NOT NULL,
                PRIMARY KEY (pipeline, run_date, model_version, feature))""",
            """CREATE TABLE model_events (
                pipeline VARCHAR NOT NULL, run_date DATE NOT NULL, model_name VARCHAR NOT NULL,
                model_version INTEGER NOT NULL, event VARCHAR NOT NULL, decision VARCHAR NOT NULL,
                evidence VARCHAR NOT NULL, run_id VARCHAR NOT NULL, recorded_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (pipeline, run_date, model_version, event))""",
            """CREATE VIEW run_history AS
                SELECT pipeline, run_date, run_id, try_number, model_name, model_version, status,
                       rows_in, rows_out, CAST(round(CAST(seconds AS NUMERIC), 2) AS DOUBLE PRECISION) AS seconds,
                       CAST(round(CAST(rows_per_s AS NUMERIC)) AS DOUBLE PRECISION) AS rows_per_s,
                       input_checksum, error, recorded_at
                FROM scoring_runs ORDER BY recorded_at DESC""",
        ],
    ),
    (
        2,
        "what a run costs, and which run published each slice",
        [
            "ALTER TABLE scoring_runs ADD COLUMN cpu_seconds DOUBLE PRECISION",
            "ALTER TABLE scoring_runs ADD COLUMN cpu_s_per_million_rows DOUBLE PRECISION",
            """CREATE TABLE published_slices (
                scores_table VARCHAR NOT NULL, pipeline VARCHAR NOT NULL, run_date DATE NOT NULL,
                model_version INTEGER NOT NULL, model_name VARCHAR NOT NULL, run_id VARCHAR NOT NULL,
                row_count BIGINT NOT NULL, partition_name VARCHAR, published_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (scores_table, pipeline, run_date, model_version))""",
            "DROP VIEW run_history",
            """CREATE VIEW run_history AS
                SELECT pipeline, run_date, run_id, try_number, model_name, model_version, status,
                       rows_in, rows_out, CAST(round(CAST(seconds AS NUMERIC), 2) AS DOUBLE PRECISION) AS seconds,
                       CAST(round(CAST(rows_per_s AS NUMERIC)) AS DOUBLE PRECISION) AS rows_per_s,
                       CAST(round(CAST(cpu_s_per_million_rows AS NUMERIC), 3) AS DOUBLE PRECISION)
                           AS cpu_s_per_million_rows,
                       input_checksum, error, recorded_at
                FROM scoring_runs ORDER BY recorded_at DESC""",
        ],
    ),
    (
        3,
        "drift metrics per segment; how each run's model version was chosen",
        [
            """CREATE TABLE drift_metrics_by_segment (
                pipeline VARCHAR NOT NULL, run_date DATE NOT NULL, model_version INTEGER NOT NULL,
                segment VARCHAR NOT NULL, feature VARCHAR NOT NULL, method VARCHAR NOT NULL,
                statistic DOUBLE PRECISION NOT NULL, threshold DOUBLE PRECISION NOT NULL,
                drifted BOOLEAN NOT NULL,
                PRIMARY KEY (pipeline, run_date, model_version, segment, feature))""",
            """INSERT INTO drift_metrics_by_segment
                SELECT pipeline, run_date, model_version, 'all', feature, method, statistic, threshold, drifted
                FROM drift_metrics""",
            "DROP TABLE drift_metrics",
            "ALTER TABLE drift_metrics_by_segment RENAME TO drift_metrics",
            "ALTER TABLE scoring_runs ADD COLUMN model_source VARCHAR",
        ],
    ),
    FRESHNESS_MIGRATION,
    OUTCOMES_MIGRATION,
    LINEAGE_MIGRATION,
    OUTPUT_CONTRACT_MIGRATION,
]


def key_kind(scores: pa.Table, entity_key: str) -> str:
    """`integer` or `string`: the two kinds of entity key a scores table may have."""
    import pyarrow as pa

    key_type = scores.schema.field(entity_key).type
    return "string" if pa.types.is_string(key_type) or pa.types.is_large_string(key_type) else "integer"


def other_key_kind(table: str, entity_key: str, stored: str, key: str) -> AuditFailed:
    """The refusal when a scores table holds the other kind of entity key than these scores."""
    return AuditFailed(
        f"table {table} stores {entity_key} as {stored}, these scores have {key} keys; "
        "nothing was published (give the pipeline its own warehouse.scores_table)"
    )


def other_classes(table: str, stored: tuple[str, ...], classes: tuple[str, ...]) -> AuditFailed:
    """The refusal when a scores table was created for other classes (or none) than these scores'."""
    return AuditFailed(
        f"table {table} stores {describe_classes(stored)}, these are {describe_classes(classes)}; "
        "nothing was published (give the pipeline its own warehouse.scores_table)"
    )


def check_classes(table: str, columns: list[str], classes: tuple[str, ...]) -> None:
    """A scores table keeps the classes it was created for: other classes (or none) are refused."""
    stored = stored_classes(columns)
    if stored != tuple(classes):
        raise other_classes(table, stored, tuple(classes))


def analyst_views(
    table: str,
    entity_key: str,
    quote: Callable[[str], str] = quoted,
    probability: bool = True,
    classes: tuple[str, ...] = (),
    context: tuple[str, ...] = (),
) -> list[tuple[str, str]]:
    """(view name, portable SELECT) for the analyst views over one scores table.

    `latest_<table>`: each entity's latest score (latest run date, then highest model version),
    with the predicted class and class probabilities for multiclass scores and the output
    contract's latest `context` columns; `as_of` is the
    table's newest published day and `is_stale` marks an entity that day's slice left out.
    `<table>_by_day`: rows, mean and quantiles of the score per run date and model version, and
    the share above one half for probabilities (the share of each predicted class for
    multiclass scores), the range for regression values.
    """
    t, k = quote(validate_identifier(table)), quote(validate_identifier(entity_key))
    context_sql = "".join(f", {quote(validate_identifier(name))}" for name in context)
    columns = (
        f"{k}, run_date, pipeline, model_name, model_version, score{select_sql(classes)}, run_id{context_sql}"
    )
    latest = f"""SELECT {columns}, as_of, run_date < as_of AS is_stale FROM (
            SELECT {columns}, row_number() OVER (
                PARTITION BY {k} ORDER BY run_date DESC, model_version DESC) AS recency,
                max(run_date) OVER () AS as_of
            FROM {t}) ranked
        WHERE recency = 1"""
    last_columns = (
        share_columns_sql(classes)
        if classes
        else "CAST(avg(CASE WHEN score >= 0.5 THEN 1.0 ELSE 0.0 END) AS DOUBLE PRECISION) AS share_above_half"
        if probability
        else "min(score) AS min_score, max(score) AS max_score"
    )
    by_day = f"""SELECT run_date, model_name, model_version, count(*) AS rows, avg(score) AS mean_score,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY score) AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY score) AS p90,
               {last_columns}
        FROM {t} GROUP BY run_date, model_name, model_version ORDER BY run_date, model_version"""
    return [
        (validate_identifier(f"latest_{table}"), latest),
        (validate_identifier(f"{table}_by_day"), by_day),
    ]


def read_scores(scores_path: Path, entity_key: str, classes: tuple[str, ...] = ()) -> pa.Table:
    """The scores partition's Parquet files as one Arrow table (entity key, score, model_version,
    run_date, and for multiclass scores predicted_class and one p_<class> per class)."""
    import pyarrow.parquet as pq

    files = sorted(scores_path.glob("*.parquet"))
    if not files:
        raise AuditFailed(f"no score files in {scores_path}; nothing was published")
    extra = class_columns(classes)
    try:
        dataset = pq.ParquetDataset([str(f) for f in files], partitioning=None)
        missing = [name for name in extra if name not in dataset.schema.names]
        if not missing:
            table = dataset.read(columns=[entity_key, "score", "model_version", "run_date", *extra])
    except (KeyError, ValueError, OSError) as exc:
        raise AuditFailed(f"unreadable scores in {scores_path}: {exc}; nothing was published") from exc
    if missing:
        raise AuditFailed(
            f"scores in {scores_path} lack the multiclass columns {', '.join(missing)}; nothing was published"
        )
    return table


def audit_scores(
    scores: pa.Table, target: ScoresSlice, expected_rows: int, check_duplicates: bool = True
) -> list[str]:
    """Each failed check as one message; an empty list means the scores may be published.

    `check_duplicates=False` leaves key uniqueness to the caller (PostgreSQL's unique index
    checks it while it is built anyway, which saves sorting the keys twice).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    keys, score = scores.column(target.entity_key), scores.column("score")
    rows = scores.num_rows
    failures = []
    if rows != expected_rows:
        failures.append(f"row count {rows} != features partition's {expected_rows}")
    if keys.null_count:
        failures.append(f"{keys.null_count} null keys")
    if not (pa.types.is_integer(keys.type) or pa.types.is_string(keys.type)):
        failures.append(f"entity key {target.entity_key} is {keys.type}, not an integer or a string")
    elif check_duplicates:
        duplicates = duplicate_keys(keys)
        if duplicates:
            failures.append(f"{duplicates} duplicate keys")
    if score.null_count:
        failures.append(f"{score.null_count} null scores")
    values = score.drop_null().to_numpy().astype(np.float64, copy=False)
    with np.errstate(invalid="ignore"):
        if target.probability:
            outside = int(np.count_nonzero(~((values >= 0.0) & (values <= 1.0))))
            if outside:
                failures.append(f"{outside} scores outside [0, 1] or NaN")
        elif not np.isfinite(values).all():
            failures.append(f"{int(np.count_nonzero(~np.isfinite(values)))} scores NaN or infinite")
    other_versions = rows - int(
        pc.sum(pc.equal(scores.column("model_version"), target.model_version)).as_py() or 0
    )
    if other_versions:
        failures.append(f"{other_versions} rows not scored by the pinned model v{target.model_version}")
    run_dates = scores.column("run_date").cast(pa.date32())
    other_dates = rows - int(
        pc.sum(pc.equal(run_dates, pa.scalar(target.run_date, pa.date32()))).as_py() or 0
    )
    if other_dates:
        failures.append(f"{other_dates} rows for another run date than {target.run_date}")
    if target.classes:
        failures += audit_multiclass(scores, target.classes)
    return failures


def duplicate_keys(keys: pa.ChunkedArray | pa.Array) -> int:
    """How many keys repeat an earlier one (nulls aside).

    Entity ids are usually dense: when the key range is at most 8x the row count, one pass
    marks each key in a byte map of the range (about 10x faster than sorting 1M keys);
    otherwise the keys are sorted (a sort beats np.unique's hashing several times over).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_string(keys.type) or pa.types.is_large_string(keys.type):
        present = keys.drop_null()
        return len(present) - int(pc.count_distinct(present).as_py())
    values = keys.drop_null().to_numpy()
    if values.size < 2:
        return 0
    low, high = int(values.min()), int(values.max())
    span = high - low + 1
    if span <= 8 * values.size + 4096:
        seen = np.zeros(span, dtype=np.bool_)
        seen[values - low] = True
        return int(values.size - np.count_nonzero(seen))
    ordered = np.sort(values)
    return int(np.count_nonzero(ordered[1:] == ordered[:-1]))


def raise_on_failures(failures: list[str], target: ScoresSlice) -> None:
    if failures:
        raise AuditFailed(
            f"scores for {target.describe()} failed the audit, nothing was published: {'; '.join(failures)}"
        )


def now() -> datetime:
    return datetime.now(UTC)


def no_pause(point: str) -> None:
    """The default pause point: publish straight through."""
