"""Compare a challenger version with the champion on labelled lake data, and gate its promotion.

The evaluation set: the label partitions that arrived in the last `days` days up to
`end_date` (default: the newest label partition), joined on (entity key, day) with the
complete features partitions of the days they label. Both versions score the same rows
in-process (each in its own feature order), and the metric fits the pipeline's task:
AUC and log loss (binary), RMSE, MAE and bias (regression), log loss and accuracy
(multiclass). The promotion rule (`batchscore.models.promotion`) applies the pipeline's
`promotion:` budgets; with
`promote`, a passing challenger takes the champion alias (compare-and-swap, recorded).

    batchscore models compare --pipeline deliveries --challenger 3 [--days 7] [--promote]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from batchscore.errors import BadInput
from batchscore.model_metrics import classification_metrics, multiclass_metrics, regression_metrics
from batchscore.models.promotion import PROMOTE, promotion_decision
from batchscore.models.registry import ModelRegistry, ModelVersion, RegistryError
from batchscore.settings import Settings
from batchscore.storage.lake import Lake, data_files
from batchscore.storage.warehouse import open_warehouse

DEFAULT_DAYS = 7
EVENT = "compare_gate"
DAY, LABEL = "_day", "_label"


@dataclass(frozen=True)
class EvaluationSet:
    """Labelled rows (entity key, `_day`, `_label`, features) and where they came from."""

    frame: pd.DataFrame
    label_partitions: list[date]
    feature_days: list[date]
    days_without_features: list[date]
    unmatched_labels: int


def _partition_day(folder: Path) -> date:
    return date.fromisoformat(folder.name.removeprefix("dt="))


def label_partitions(settings: Settings, lake: Lake, days: int, end_date: date | None) -> list[Path]:
    """The complete label partitions that arrived in the `days` days up to `end_date`."""
    dataset = settings.pipeline.labels.dataset
    base = lake.root / "raw" / dataset
    if end_date is None:
        landed = lake.landed_raw(dataset)[-1:]  # the newest; the window is staged in below
        if not landed:
            raise BadInput(f"no complete {dataset} partition under {base}: nothing is labelled yet")
        end_date = _partition_day(landed[-1])
    arrivals = sorted(end_date - timedelta(days=k) for k in range(days))
    parts = [p for p in (lake.raw_partition(dataset, d) for d in arrivals) if lake.available(p)]
    if not parts:
        raise BadInput(
            f"no complete {dataset} partition arrived in the {days} days {arrivals[0]}..{end_date} under {base}"
        )
    return parts


def _read(folder: Path, columns: list[str]) -> pd.DataFrame:
    files = data_files(folder)
    if not files:
        raise BadInput(f"partition {folder} holds no Parquet files")
    try:
        tables = [pq.read_table(f, columns=columns) for f in files]
    except (KeyError, pa.ArrowInvalid) as exc:
        raise BadInput(f"partition {folder} lacks some of the columns {', '.join(columns)}: {exc}") from None
    return pd.concat([t.to_pandas() for t in tables], ignore_index=True)


def read_labels(settings: Settings, parts: list[Path]) -> pd.DataFrame:
    """Entity key, `_day` (the labelled day) and `_label` of every labelled row (nulls dropped)."""
    pipeline = settings.pipeline
    key, labels = pipeline.dataset.entity_key, pipeline.labels
    frame = pd.concat([_read(p, [key, labels.date_column, labels.column]) for p in parts], ignore_index=True)
    frame = frame.rename(columns={labels.date_column: DAY, labels.column: LABEL}).dropna(subset=[LABEL])
    frame[DAY] = pd.to_datetime(frame[DAY]).dt.date
    return frame.drop_duplicates(subset=[key, DAY], keep="last")


def evaluation_set(
    settings: Settings, lake: Lake, feature_names: list[str], days: int, end_date: date | None
) -> EvaluationSet:
    """Labels of the window joined with the features of their own day (complete partitions only)."""
    pipeline = settings.pipeline
    key = pipeline.dataset.entity_key
    parts = label_partitions(settings, lake, days, end_date)
    labels = read_labels(settings, parts)
    labelled_days = sorted(set(labels[DAY]))
    present = [d for d in labelled_days if lake.available(lake.features_partition(pipeline.name, d))]
    missing = [d for d in labelled_days if d not in present]
    frames = [
        _read(lake.features_partition(pipeline.name, d), [key, *feature_names]).assign(**{DAY: d})
        for d in present
    ]
    joined = (
        labels.merge(pd.concat(frames, ignore_index=True), on=[key, DAY], how="inner")
        if frames
        else labels.iloc[0:0]
    )
    if joined.empty:
        where = f"{pipeline.labels.dataset} dt={_partition_day(parts[0])}..{_partition_day(parts[-1])}"
        raise BadInput(
            f"nothing to compare on: the labels of {where} label the days "
            f"{', '.join(map(str, labelled_days)) or '(none)'}; complete features partitions "
            f"{lake.root / 'features' / pipeline.name}/dt=…: "
            f"{', '.join(map(str, present)) or 'none'}, and none of their rows is labelled"
        )
    return EvaluationSet(
        joined.reset_index(drop=True),
        [_partition_day(p) for p in parts],
        present,
        missing,
        len(labels) - len(joined),
    )


def task_labels(settings: Settings, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, int]:
    """Rows the task can use, their labels as the metrics want them, and how many were skipped
    (multiclass: labels that are none of the pipeline's `classes`)."""
    model = settings.pipeline.model
    if model.task == "multiclass":
        index = {name: i for i, name in enumerate(model.classes)}
        codes = frame[LABEL].astype(str).map(index)
        known = codes.notna().to_numpy()
        if not known.any():
            raise BadInput(
                f"none of the {len(frame)} labels is one of the classes {', '.join(model.classes)}"
            )
        return frame[known], codes[known].to_numpy(np.int64), int((~known).sum())
    dtype = np.int64 if model.task == "binary" else np.float64
    return frame, frame[LABEL].to_numpy(dtype), 0


def version_metrics(
    settings: Settings, version: ModelVersion, frame: pd.DataFrame, labels: np.ndarray
) -> dict[str, Any]:
    """Score the rows with the version (its backend, its feature order) and measure it."""
    from batchscore.models.scoring import load_scorer
    from batchscore.models.scoring_pass import model_ref

    model = settings.pipeline.model
    if version.task != model.task:
        return {"version": version.version, "error": f"a {version.task} model; the pipeline is {model.task}"}
    classes = tuple(version.metadata.get("classes") or ())
    if model.task == "multiclass" and classes != tuple(model.classes):
        return {"version": version.version, "error": f"classes {list(classes)}, not {model.classes}"}
    ref = model_ref(settings, version)
    matrix = np.ascontiguousarray(frame[list(ref.feature_names)].to_numpy(np.float32))
    predicted = load_scorer(ref).predict(matrix, 0)
    if model.task == "binary":
        metrics = classification_metrics(labels, predicted)
    elif model.task == "regression":
        metrics = regression_metrics(labels, predicted)
    else:
        metrics = multiclass_metrics(labels, predicted)
    return {"version": version.version, **metrics}


def _versions(
    registry: ModelRegistry, challenger: int, alias: str
) -> tuple[ModelVersion, ModelVersion | None]:
    try:
        version = registry.get(challenger)
    except RegistryError as exc:
        raise BadInput(str(exc)) from None
    current = registry.aliases().get(alias)
    if current == challenger:
        raise BadInput(f"{registry.model} v{challenger} already is the {alias}: nothing to compare")
    return version, registry.get(current) if current is not None else None


def run(
    settings: Settings,
    challenger_version: int,
    *,
    days: int = DEFAULT_DAYS,
    end_date: date | None = None,
    promote: bool = False,
) -> dict[str, Any]:
    """Build the evaluation set, score it with both versions, decide, and promote when asked."""
    if days < 1:
        raise BadInput(f"--days {days}: use at least one day")
    pipeline = settings.pipeline
    lake = Lake(settings.platform.lake_url)
    registry = ModelRegistry(lake, pipeline.model.name)
    alias = pipeline.model.alias
    challenger, champion = _versions(registry, challenger_version, alias)
    names = list(dict.fromkeys([*challenger.feature_order, *(champion.feature_order if champion else ())]))
    data = evaluation_set(settings, lake, names, days, end_date)
    frame, labels, skipped = task_labels(settings, data.frame)
    ours = version_metrics(settings, challenger, frame, labels)
    theirs = version_metrics(settings, champion, frame, labels) if champion else None
    decision, reasons = promotion_decision(pipeline.model.task, ours, theirs, pipeline.promotion)
    result: dict[str, Any] = {
        "pipeline": pipeline.name,
        "model": pipeline.model.name,
        "task": pipeline.model.task,
        "alias": alias,
        "challenger": ours,
        "champion": theirs,
        "decision": decision,
        "reasons": reasons,
        "rows": len(frame),
        "skipped_unknown_labels": skipped,
        "unmatched_labels": data.unmatched_labels,
        "label_partitions": [d.isoformat() for d in data.label_partitions],
        "feature_days": [d.isoformat() for d in data.feature_days],
        "days_without_features": [d.isoformat() for d in data.days_without_features],
        "move": None,
    }
    if promote and decision == PROMOTE:
        result["move"] = promote_challenger(settings, registry, result, champion)
    return result


def promote_challenger(
    settings: Settings, registry: ModelRegistry, result: dict[str, Any], champion: ModelVersion | None
) -> dict[str, Any]:
    """Move the alias (compare-and-swap on the champion read before scoring) and record it."""
    pipeline = settings.pipeline
    evidence = {
        key: result[key] for key in ("task", "challenger", "champion", "rows", "label_partitions", "reasons")
    }
    move = registry.move_alias(
        result["alias"],
        result["challenger"]["version"],
        reason="compare gate passed",
        expected_current=champion.version if champion else None,
        evidence=evidence,
    )
    open_warehouse(settings.platform.warehouse_url).record_event(
        pipeline.name,
        datetime.now(UTC).date(),
        pipeline.model.name,
        move["to_version"],
        EVENT,
        f"{move['alias']}:v{move['from_version']}->v{move['to_version']}",
        {**move, "metrics": evidence},
        f"cli__{move['at']}",
    )
    return move
