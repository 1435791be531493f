"""Feature definitions shared by training and scoring.

A feature is a named Spark SQL expression over the raw entity table, cast to float32.
A `FeatureSet` groups them; its content hash is stored with every model version and
checked before scoring, so a model never scores features it was not trained on.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass(frozen=True)
class Feature:
    """One model input: `expr` is Spark SQL over the raw columns; NULL means missing."""

    name: str
    expr: str
    nullable: bool = False
    description: str = ""


@dataclass(frozen=True)
class FeatureSet:
    name: str
    version: int
    source_dataset: str
    entity_key: str
    features: tuple[Feature, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def content_hash(self) -> str:
        """SHA-256 of everything that changes the computed values (not descriptions)."""
        body = {
            "name": self.name,
            "version": self.version,
            "source_dataset": self.source_dataset,
            "entity_key": self.entity_key,
            "features": [[f.name, f.expr, f.nullable] for f in self.features],
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def compute_features(raw: DataFrame, feature_set: FeatureSet, passthrough: Sequence[str] = ()) -> DataFrame:
    """Entity key plus one float32 column per feature, in the feature set's order.

    `passthrough` keeps extra raw columns (e.g. the partition date when training on many days).
    """
    from pyspark.sql import functions as F

    columns = [entity_key_column(raw, feature_set.entity_key)]
    columns += [F.expr(f.expr).cast("float").alias(f.name) for f in feature_set.features]
    columns += [F.col(name) for name in passthrough]
    return raw.select(*columns)


def entity_key_column(raw: DataFrame, key: str) -> Any:
    """The entity key as published: integer keys as 64-bit integers, string keys as strings.

    Any other key type (decimal, date, float) is refused: it does not compare exactly.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegralType, StringType

    if key not in raw.columns:
        raise KeyError(f"entity key {key!r} is not a column of the raw table ({', '.join(raw.columns)})")
    data_type = raw.schema[key].dataType
    if isinstance(data_type, IntegralType):
        return F.col(key).cast("long").alias(key)
    if isinstance(data_type, StringType):
        return F.col(key).alias(key)
    raise TypeError(f"entity key {key!r} is {data_type.simpleString()}; use an integer or a string key")


def load_feature_set(module: str) -> FeatureSet:
    """The `FEATURE_SET` declared by a module under `features/` (named in the pipeline YAML)."""
    feature_set = getattr(importlib.import_module(module), "FEATURE_SET", None)
    if not isinstance(feature_set, FeatureSet):
        raise TypeError(f"{module} must define FEATURE_SET = FeatureSet(...)")
    return feature_set
