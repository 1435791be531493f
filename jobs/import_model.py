"""Register a model trained elsewhere as the next version of a pipeline's model.

Every check runs before anything is written: the file's format (pickles refused), its
inputs against the pipeline's feature set by name (a permutation is recorded), its task,
and its outputs on a sample (shape, finite, probabilities in [0, 1]). The sample is the
`--reference` file, else the newest features partition, else features computed on the
newest raw partition, so a pipeline that never ran can import its first model.

    batchscore models import --pipeline deliveries --model model.json [--alias champion]
"""

from __future__ import annotations

import getpass
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from batchscore.errors import BadInput
from batchscore.models import formats
from batchscore.models.registry import ModelRegistry
from batchscore.settings import Settings
from batchscore.storage.lake import Lake, file_sha256
from batchscore.storage.manifest import BadManifest
from batchscore.storage.reuse import features_manifest
from features import FeatureSet, load_feature_set

SAMPLE_ROWS = 2_000


@dataclass(frozen=True)
class ImportRequest:
    """What `batchscore models import` was asked to do."""

    source: str
    alias: str | None = None
    metrics_file: Path | None = None
    reference_file: Path | None = None
    note: str | None = None
    feature_names: tuple[str, ...] | None = None
    training_window: tuple[date, date] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def run(settings: Settings, request: ImportRequest) -> dict[str, Any]:
    """Check the model, build its reference sample, register it, move the alias if asked."""
    pipeline = settings.pipeline
    lake = Lake(settings.platform.lake_url)
    feature_set = load_feature_set(pipeline.features)
    metrics = read_metrics(request.metrics_file)
    with tempfile.TemporaryDirectory(prefix="batchscore-import-") as tmp:
        work = Path(tmp)
        artifact, source = fetch(request.source, work / "source")
        inspected = formats.inspect_model(artifact)
        order = formats.check_inputs(
            inspected, feature_set.names, request.feature_names or source.get("signature_inputs")
        )
        formats.check_task(inspected, pipeline.model.task, pipeline.model.classes)
        sample, sample_source = checking_sample(settings, lake, feature_set, request.reference_file)
        task, classes = pipeline.model.task, pipeline.model.classes
        scores = formats.sample_scores(inspected, sample[list(order)].to_numpy(np.float32), task, classes)
        reference, reference_source = reference_frame(
            settings, lake, feature_set, request, sample, sample_source
        )
        if request.reference_file is not None:  # the reference is the sample's head: scored above
            scores = scores[: len(reference)]
        else:
            scores = formats.sample_scores(
                inspected, reference[list(order)].to_numpy(np.float32), task, classes
            )
        out = work / "artifacts"
        out.mkdir()
        stored = store_artifacts(inspected, out)
        reference = reference[[feature_set.entity_key, *feature_set.names]].assign(
            score=_first_column(scores)
        )
        reference.to_parquet(out / "reference.parquet", index=False)
        metadata = import_metadata(settings, feature_set, inspected, order, source, metrics, request)
        metadata["reference"] = {"source": reference_source, "rows": len(reference)}
        metadata["checks"] = {"sample_source": sample_source, "sample_rows": len(sample)}
        registry = ModelRegistry(lake, pipeline.model.name)
        current = registry.aliases().get(request.alias) if request.alias else None
        version = registry.register(out, metadata)
    move = None
    if request.alias:
        move = registry.move_alias(
            request.alias,
            version.version,
            reason=f"import: {request.note or request.source}",
            expected_current=current,
            evidence={"by": metadata["imported_by"], "source": request.source},
        )
    return {
        "model": pipeline.model.name,
        "version": version.version,
        "format": inspected.format,
        "stored": stored,
        "feature_order": "permuted" if tuple(order) != tuple(feature_set.names) else "same",
        "sample": sample_source,
        "reference": reference_source,
        "alias": move,
        "path": str(version.path),
    }


def fetch(source: str, dest: Path) -> tuple[Path, dict[str, Any]]:
    """The model file to inspect, and where it came from (path, or MLflow URI and run)."""
    from batchscore.models.mlflow_source import fetch_mlflow_model, is_mlflow_source

    if is_mlflow_source(source):
        model = fetch_mlflow_model(source, dest)
        return model.artifact, {
            "kind": "mlflow",
            "uri": source,
            "run_id": model.run_id,
            "model_uuid": model.model_uuid,
            "mlflow_version": model.mlflow_version,
            "flavor": model.format,
            "signature_inputs": model.signature_inputs,
        }
    path = Path(source).expanduser()
    if path.is_dir():
        raise BadInput(f"{path} is a folder without an MLmodel file; pass the model file itself")
    if not path.exists():
        raise BadInput(f"model {source} does not exist (a file, an MLflow model folder, models:/ or runs:/)")
    return path, {"kind": "file", "path": str(path.resolve())}


def read_metrics(path: Path | None) -> dict[str, Any]:
    """The `--metrics` JSON object (name -> number, or nested objects), recorded as given."""
    if path is None:
        return {}
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput(f"--metrics {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"--metrics {path} is not JSON: {exc}") from None
    if not isinstance(metrics, dict):
        raise BadInput(f"--metrics {path} must hold a JSON object of metric names to values")
    return metrics


def checking_sample(
    settings: Settings, lake: Lake, feature_set: FeatureSet, reference_file: Path | None
) -> tuple[pd.DataFrame, str]:
    """Rows of features to run the model on before it is registered, and where they came from."""
    if reference_file is not None:
        return read_reference(reference_file, feature_set), f"reference file {reference_file}"
    newest = newest_features(lake, settings.pipeline.name, feature_set)
    if newest is not None:
        table = pq.ParquetFile(newest[1][0]).read_row_groups(
            [0], columns=[feature_set.entity_key, *feature_set.names]
        )
        return table.slice(0, SAMPLE_ROWS).to_pandas(), f"features partition dt={newest[0]}"
    day, partition = newest_raw(lake, feature_set.source_dataset)
    return features_from_raw(settings, [partition], feature_set, SAMPLE_ROWS), f"features of raw dt={day}"


def read_reference(path: Path, feature_set: FeatureSet) -> pd.DataFrame:
    try:
        frame = pq.read_table(path).to_pandas()
    except (FileNotFoundError, OSError) as exc:
        raise BadInput(f"--reference {path} is not a readable Parquet file: {exc}") from None
    missing = [c for c in (feature_set.entity_key, *feature_set.names) if c not in frame.columns]
    if missing:
        raise BadInput(f"--reference {path} lacks columns {', '.join(missing)}")
    if frame.empty:
        raise BadInput(f"--reference {path} has no rows")
    return frame


def newest_features(lake: Lake, pipeline: str, feature_set: FeatureSet) -> tuple[date, list[Path]] | None:
    """The newest complete features partition built with this feature set, if any."""
    base = lake.root / "features" / pipeline
    for folder in sorted(base.glob("dt=*"), reverse=True) if base.is_dir() else []:
        if lake.is_complete(folder) and _built_with(folder) == feature_set.content_hash:
            files = sorted(folder.glob("*.parquet"))
            if files and pq.ParquetFile(files[0]).metadata.num_rows:
                return date.fromisoformat(folder.name.removeprefix("dt=")), files
    return None


def _built_with(folder: Path) -> str | None:
    try:
        return features_manifest(folder).feature_set_hash
    except BadManifest:
        return None


def newest_raw(lake: Lake, dataset: str) -> tuple[date, Path]:
    base = lake.root / "raw" / dataset
    days = [p for p in lake.landed_raw(dataset)[-1:] if lake.available(p)]  # the newest, staged in
    if not days:
        raise BadInput(f"no complete partition of {dataset} in {base}: land one, or pass --reference FILE")
    return date.fromisoformat(days[0].name.removeprefix("dt=")), days[0]


def features_from_raw(
    settings: Settings, partitions: list[Path], feature_set: FeatureSet, rows: int
) -> pd.DataFrame:
    """The pipeline's features computed with Spark on raw partitions (the first `rows` by key)."""
    from batchscore.compute.spark import get_spark
    from features import compute_features

    spark = get_spark(settings.platform)
    raw = spark.read.parquet(*[str(p) for p in partitions])
    frame: pd.DataFrame = (
        compute_features(raw, feature_set).orderBy(feature_set.entity_key).limit(rows).toPandas()
    )
    for name in feature_set.names:
        frame[name] = frame[name].astype(np.float32)
    return frame


def reference_frame(
    settings: Settings,
    lake: Lake,
    feature_set: FeatureSet,
    request: ImportRequest,
    sample: pd.DataFrame,
    sample_source: str,
) -> tuple[pd.DataFrame, str]:
    """The drift reference: `--reference`, else the declared training window's features, else
    the newest raw partition's."""
    rows = settings.pipeline.training.reference_sample_rows
    if request.reference_file is not None:
        return sample.head(rows), sample_source
    if request.training_window is not None:
        start, end = request.training_window
        days = [start + timedelta(days=k) for k in range((end - start).days + 1)]
        parts = [lake.raw_partition(feature_set.source_dataset, d) for d in days]
        parts = [p for p in parts if lake.is_complete(p)]
        if parts:
            frame = features_from_raw(settings, parts, feature_set, rows)
            return frame, f"features of the training window {start}..{end} ({len(parts)} raw partitions)"
    day, partition = newest_raw(lake, feature_set.source_dataset)
    return features_from_raw(settings, [partition], feature_set, rows), f"features of raw dt={day}"


def store_artifacts(model: formats.InspectedModel, out: Path) -> list[str]:
    """The registry's copies: XGBoost as model.ubj (and the JSON as given), ONNX as model.onnx."""
    if model.format == "onnx":
        shutil.copyfile(model.path, out / "model.onnx")
        return ["model.onnx"]
    import xgboost as xgb

    booster = xgb.Booster(model_file=str(model.path))
    booster.save_model(str(out / "model.ubj"))
    if model.path.suffix.lower() == ".json":
        shutil.copyfile(model.path, out / "model.json")
        return ["model.ubj", "model.json"]
    return ["model.ubj"]


def import_metadata(
    settings: Settings,
    feature_set: FeatureSet,
    model: formats.InspectedModel,
    order: tuple[str, ...],
    source: dict[str, Any],
    metrics: dict[str, Any],
    request: ImportRequest,
) -> dict[str, Any]:
    """The version's metadata: what it predicts, its inputs, where it came from, who imported it."""
    pipeline = settings.pipeline
    now = datetime.now(UTC).isoformat()
    metadata: dict[str, Any] = {
        "pipeline": pipeline.name,
        "predicts": pipeline.description,
        "label": pipeline.labels.column,
        "task": pipeline.model.task,
        "classes": list(pipeline.model.classes),
        "created_at": now,
        "imported_at": now,
        "imported_by": getpass.getuser(),
        "note": request.note,
        "source": {
            **{k: v for k, v in source.items() if k != "signature_inputs"},
            "format": model.format,
            "sha256": file_sha256(model.path),
            **model.detail,
        },
        "feature_set": {
            "name": feature_set.name,
            "version": feature_set.version,
            "hash": feature_set.content_hash,
            "features": feature_set.names,
        },
        "metrics": metrics.get("metrics", metrics) if isinstance(metrics.get("metrics"), dict) else metrics,
        "code_version": "external",
        **request.extra,
    }
    if tuple(order) != tuple(feature_set.names):
        metadata["feature_order"] = list(order)
    if request.training_window is not None:
        start, end = request.training_window
        metadata["training_window"] = {"start": start.isoformat(), "end": end.isoformat()}
    elif isinstance(metrics.get("training_window"), dict):
        metadata["training_window"] = metrics["training_window"]
    return metadata


def _first_column(scores: np.ndarray) -> np.ndarray:
    """The published `score` of each row: the value itself, or the top class's probability."""
    return scores.max(axis=1) if scores.ndim == 2 else scores
