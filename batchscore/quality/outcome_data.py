"""What the evaluate job reads: published slices and their scores (the warehouse is the truth
of what was published), the labels landed so far for a day, and each entity's segment.

    labels_for_day(...)   every landed label partition with dt in [label_date, as_of] holding
                          rows of label_date, deduplicated by entity key (the last arrival wins)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchscore.settings import Settings
from batchscore.storage.lake import Lake
from batchscore.storage.warehouse import quoted
from batchscore.storage.warehouse.multiclass import PREDICTED, probability_columns

if TYPE_CHECKING:
    from batchscore.storage.warehouse import Warehouse


@dataclass(frozen=True)
class Slice:
    """One published (table, run date, model version) slice."""

    table: str
    run_date: date
    model_name: str
    model_version: int


def published(warehouse: Warehouse, settings: Settings, table: str, run_date: date) -> list[Slice]:
    """The slices of `table` published for `run_date`, lowest model version first."""
    rows = warehouse.query(
        "SELECT model_name, model_version FROM published_slices "
        "WHERE scores_table = ? AND pipeline = ? AND run_date = ? ORDER BY model_version",
        [table, settings.pipeline.name, run_date],
    )
    return [Slice(table, run_date, str(name), int(version)) for name, version in rows]


def previous_published(warehouse: Warehouse, settings: Settings, table: str, run_date: date) -> Slice | None:
    """The newest slice of `table` published for a day before `run_date` (highest version that day)."""
    rows = warehouse.query(
        "SELECT run_date, model_name, model_version FROM published_slices "
        "WHERE scores_table = ? AND pipeline = ? AND run_date < ? "
        "ORDER BY run_date DESC, model_version DESC LIMIT 1",
        [table, settings.pipeline.name, run_date],
    )
    if not rows:
        return None
    day, name, version = rows[0]
    return Slice(table, _as_date(day), str(name), int(version))


def slice_scores(warehouse: Warehouse, settings: Settings, s: Slice) -> pd.DataFrame:
    """The slice's rows, in entity-key order: entity key, score, and for multiclass scores the
    predicted class and one `p_<class>` column per class.

    The order is part of the result: the estimate's band draws one label per row in order, and
    sums follow the row order to the last bit; a warehouse returns unordered rows in any order."""
    pipeline = settings.pipeline
    key = pipeline.dataset.entity_key
    extra = (
        [PREDICTED, *probability_columns(pipeline.model.classes)]
        if pipeline.model.task == "multiclass"
        else []
    )
    columns = ", ".join(quoted(c) for c in [key, "score", *extra])
    found = warehouse.query_columns(
        f"SELECT {columns} FROM {quoted(s.table)} WHERE run_date = ? AND model_version = ? ORDER BY {quoted(key)}",
        [s.run_date, s.model_version],
    )
    return pd.DataFrame(found)


def label_dates(lake: Lake, settings: Settings, as_of: date) -> list[date]:
    """The days that label partitions landed with dt in (as_of - lookback_days, as_of] refer to."""
    labels = settings.pipeline.labels
    found: set[date] = set()
    for back in range(settings.pipeline.performance.lookback_days):
        partition = lake.raw_partition(labels.dataset, as_of - timedelta(days=back))
        if lake.available(partition):
            days = _read(lake, partition, [labels.date_column]).column(labels.date_column)
            found.update(_as_date(d) for d in pc.unique(days).to_pylist() if d is not None)
    return sorted(d for d in found if d <= as_of)


def labels_for_day(lake: Lake, settings: Settings, label_date: date, as_of: date) -> pd.DataFrame:
    """The labels of `label_date` landed by `as_of`: entity key and label, one row per entity.

    Every landed partition with dt from `label_date` to `as_of` is read (labels never land
    before the day they describe); a later arrival replaces an earlier label of the same entity.
    """
    pipeline = settings.pipeline
    labels, key = pipeline.labels, pipeline.dataset.entity_key
    parts = []
    for offset in range((as_of - label_date).days + 1):
        partition = lake.raw_partition(labels.dataset, label_date + timedelta(days=offset))
        if not lake.available(partition):
            continue
        table = _read(lake, partition, [key, labels.date_column, labels.column])
        day = pc.equal(table.column(labels.date_column).cast(pa.date32()), pa.scalar(label_date, pa.date32()))
        rows = table.filter(day).select([key, labels.column]).to_pandas()
        rows["_arrival"] = offset
        parts.append(rows)
    if not parts:
        return pd.DataFrame({key: [], labels.column: []})
    landed = pd.concat(parts, ignore_index=True).dropna(subset=[labels.column])
    landed = landed.sort_values("_arrival", kind="mergesort").drop_duplicates(key, keep="last")
    return landed.drop(columns="_arrival").reset_index(drop=True)


def segments_of(lake: Lake, settings: Settings, run_date: date) -> pd.DataFrame | None:
    """Entity key and segment column from the day's features partition (None without a segment
    column, or when the partition is gone)."""
    pipeline = settings.pipeline
    column = pipeline.drift.segment_column
    partition = lake.features_partition(pipeline.name, run_date)
    if column is None or not lake.available(partition):
        return None
    return _read(lake, partition, [pipeline.dataset.entity_key, column]).to_pandas()


def with_segments(frame: pd.DataFrame, segments: pd.DataFrame | None, key: str) -> np.ndarray | None:
    """Each row's segment value, aligned with `frame` (None without segments)."""
    if segments is None:
        return None
    column = next(c for c in segments.columns if c != key)
    joined = frame[[key]].merge(segments, on=key, how="left", validate="many_to_one")
    return joined[column].to_numpy(dtype=object)


def _read(lake: Lake, partition: Any, columns: list[str]) -> pa.Table:
    files = lake.require_complete(partition)
    return pa.concat_tables([pq.read_table(path, columns=columns) for path in files])


def _as_date(value: Any) -> date:
    if isinstance(value, date):
        return value if type(value) is date else value.date()  # type: ignore[attr-defined]
    return date.fromisoformat(str(value)[:10])
