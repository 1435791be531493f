"""What `pipelines validate` checks in the lake: the labels dataset is there with the columns
the pipeline reads, and the model the pipeline scores with was trained on its feature set.
Each check returns its OK line or raises `BadInput` naming the setting to fix."""

from __future__ import annotations

import pyarrow.parquet as pq

from batchscore.errors import BadInput
from batchscore.models.metadata import BadModelMetadata
from batchscore.models.registry import ModelRegistry, RegistryError
from batchscore.settings import PipelineSettings
from batchscore.storage.lake import Lake, data_files
from features import FeatureSet


def check_labels(lake: Lake, pipeline: PipelineSettings) -> str:
    """`labels.dataset` has partitions under `<lake>/raw/`; the newest complete one holds the
    entity key, `labels.column` and `labels.date_column`."""
    labels = pipeline.labels
    days = lake.raw_days(labels.dataset)
    folder = lake.remote_url(lake.root / "raw" / labels.dataset)
    if not days:
        raise BadInput(
            f"labels dataset {labels.dataset!r} (labels.dataset in the pipeline file) has no partition: "
            f"nothing under {folder}/{_known(lake)}"
        )
    complete = [day for day, done in days.items() if done]
    if not complete:
        return f"OK labels dataset {labels.dataset}: {len(days)} partitions, none complete yet (columns not checked)"
    partition = lake.raw_partition(labels.dataset, complete[-1])
    lake.available(partition)  # an S3 lake: stage it into the working copy
    files = data_files(partition)
    if not files:
        raise BadInput(
            f"labels dataset {labels.dataset!r}: {lake.remote_url(partition)} holds no Parquet files"
        )
    columns = set(pq.read_schema(files[0]).names)
    wanted = [pipeline.dataset.entity_key, labels.column, labels.date_column]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise BadInput(
            f"labels dataset {labels.dataset!r} has no column {', '.join(missing)} in "
            f"{lake.remote_url(partition)} (labels.column, labels.date_column and the entity key must be "
            f"there; it has {', '.join(sorted(columns))})"
        )
    return f"OK labels dataset {labels.dataset}: {len(complete)} complete partitions with {', '.join(wanted)}"


def _known(lake: Lake) -> str:
    """The raw datasets of a local lake, to spot a misspelt name (an S3 lake is not listed)."""
    raw = lake.root / "raw"
    if lake.store is not None or not raw.is_dir():
        return ""
    names = sorted(p.name for p in raw.iterdir() if p.is_dir())
    return f" (raw datasets: {', '.join(names) or 'none'})"


def check_champion(lake: Lake, pipeline: PipelineSettings, feature_set: FeatureSet) -> str:
    """The version `model.alias` points at now, when there is one, scores this feature set:
    the same feature names and the same feature-set hash (scoring refuses any other)."""
    model, alias = pipeline.model.name, pipeline.model.alias
    registry = ModelRegistry(lake, model)
    version = registry.aliases().get(alias)
    if version is None:
        return f"OK model {model}: no {alias!r} version yet (nothing to compare the features with)"
    try:
        found = registry.get(version)
    except (RegistryError, BadModelMetadata) as exc:
        raise BadInput(f"model {model} v{version} ({alias}) cannot be read: {exc}") from None
    names, order = set(feature_set.names), set(found.feature_order)
    if names != order:
        raise BadInput(
            f"model {model} v{version} ({alias}) was trained on other features than {pipeline.features} "
            f"declares: missing from the model {', '.join(sorted(names - order)) or 'none'}; "
            f"not in the feature set {', '.join(sorted(order - names)) or 'none'}; retrain it"
        )
    if found.feature_set_hash != feature_set.content_hash:
        raise BadInput(
            f"model {model} v{version} ({alias}) was trained on feature set {found.feature_set_hash[:12]}, "
            f"but {pipeline.features} now defines {feature_set.content_hash[:12]} (same names, other SQL "
            "or version): scoring would refuse it; retrain it"
        )
    return f"OK model {model} v{version} ({alias}): trained on these {len(names)} features"
