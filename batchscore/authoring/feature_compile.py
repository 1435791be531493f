"""Compile a feature set against its raw contract before any data lands.

An empty DataFrame of the raw suite's `meta.schema` is built on the Spark session; each
feature's expression is analysed on it alone (so a missing column, a type error or bad SQL is
reported with the feature's name and its SQL), then the whole set is computed on it by
`compute_features`, the function `build_features` and training call.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pyarrow as pa

from features import FeatureSet, compute_features, entity_key_column

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]")
_DECIMAL = re.compile(r"decimal(?:128|256)?\((\d+), *(\d+)\)")
# PySpark logs every analysis error it raises, with the JVM stack, through these loggers.
_SPARK_ERROR_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")


def arrow_type(name: str) -> pa.DataType:
    """The Arrow type a contract spells `name` (`int64`, `date32[day]`, `timestamp[us, tz=UTC]`...)."""
    timestamp = _TIMESTAMP.fullmatch(name)
    if timestamp:
        return pa.timestamp(timestamp.group(1), timestamp.group(2))
    decimal = _DECIMAL.fullmatch(name)
    if decimal:
        return pa.decimal128(int(decimal.group(1)), int(decimal.group(2)))
    try:
        return pa.type_for_alias(name)
    except ValueError:
        raise ValueError(f"unknown Arrow type {name!r}") from None


def empty_frame(spark: SparkSession, declared: dict[str, str]) -> DataFrame:
    """No rows, the contract's columns and types (raises ValueError naming a bad column)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    fields = []
    for column, type_name in declared.items():
        try:
            fields.append(pa.field(column, arrow_type(type_name)))
        except ValueError as exc:
            raise ValueError(f"column {column}: {exc}") from None
    return spark.createDataFrame([], from_arrow_schema(pa.schema(fields)))


def first_line(exc: BaseException) -> str:
    """Spark's error without its SQL state, excerpt and JVM stack: what is wrong, in one line."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].split(" SQLSTATE:")[0]


@contextmanager
def _spark_errors_unlogged() -> Iterator[None]:
    """The errors are reported as problems; PySpark's own log of each would bury them."""
    loggers = [logging.getLogger(name) for name in _SPARK_ERROR_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def compile_problems(spark: SparkSession, feature_set: FeatureSet, declared: dict[str, str]) -> list[str]:
    """One line per feature that does not compile over the contract's columns; [] when all do."""
    with _spark_errors_unlogged():
        return _compile(spark, feature_set, declared)


def _compile(spark: SparkSession, feature_set: FeatureSet, declared: dict[str, str]) -> list[str]:
    from pyspark.sql import functions as F

    try:
        raw = empty_frame(spark, declared)
    except ValueError as exc:
        return [f"the raw contract cannot be built to compile the features on: {exc}"]
    problems = []
    try:
        entity_key_column(raw, feature_set.entity_key)
    except (KeyError, TypeError) as exc:
        problems.append(f"entity key: {exc.args[0]}")
    for feature in feature_set.features:
        try:
            raw.select(F.expr(feature.expr).cast("float").alias(feature.name))
        except Exception as exc:  # Spark's parse and analysis errors share no narrower base
            problems.append(f"feature {feature.name}: {first_line(exc)} (SQL: {feature.expr})")
    if problems:
        return problems
    try:
        compute_features(raw, feature_set).collect()
    except Exception as exc:
        return [f"computing the feature set on an empty frame of the raw contract failed: {first_line(exc)}"]
    return []
