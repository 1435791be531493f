"""The three expectation suites of a new pipeline, inferred from the profile of one partition.

Same JSON as the reviewed suites (`name`, `meta.notes`, `meta.schema` with Arrow type names,
`expectations`). Bounds are loose on purpose and never tighter than what was observed: ranges
widen by `RANGE_MARGIN` of the span (integers stay integers, non-negative columns stay
non-negative), a column seen with nulls must be non-null for the observed share minus
`NULL_MARGIN`, and low-cardinality strings keep to the values seen for `CATEGORY_MOSTLY` of rows.
"""

from __future__ import annotations

import math
from typing import Any

from batchscore.authoring.design import FeaturePlan, PlannedFeature
from batchscore.authoring.profile import ColumnProfile, PartitionProfile

RANGE_MARGIN = 0.1
NULL_MARGIN = 0.05
CATEGORY_MOSTLY = 0.99


def output_key_type(key: ColumnProfile | str) -> str:
    """The key's type in the features and scores partitions: `compute_features` and the scorer
    publish an integer key as int64 and a string key as a string."""
    kind = key.kind if isinstance(key, ColumnProfile) else key
    return "string" if kind in ("string", "large_string") else "int64"


def expect(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": f"expect_{kind}", "kwargs": kwargs}


def suite(
    name: str, notes: str, schema: dict[str, str], expectations: list[dict[str, Any]]
) -> dict[str, Any]:
    return {"name": name, "meta": {"notes": notes, "schema": schema}, "expectations": expectations}


def table_checks(columns: list[str], key: str) -> list[dict[str, Any]]:
    """Exact column set, at least one row, and the key unique and never null."""
    return [
        expect("table_columns_to_match_set", column_set=columns, exact_match=True),
        expect("table_row_count_to_be_between", min_value=1),
        expect("column_values_to_be_unique", column=key),
        expect("column_values_to_not_be_null", column=key),
    ]


def not_null(column: str, null_share: float) -> list[dict[str, Any]]:
    """Never null, or (when nulls were seen) non-null for the observed share minus the margin."""
    if null_share == 0:
        return [expect("column_values_to_not_be_null", column=column)]
    mostly = math.floor((1.0 - null_share - NULL_MARGIN) * 100) / 100
    return [expect("column_values_to_not_be_null", column=column, mostly=mostly)] if mostly > 0 else []


def widened(low: float, high: float, integer: bool) -> tuple[float, float]:
    """The observed range widened by the margin; never tighter than observed."""
    span = high - low
    pad = span * RANGE_MARGIN if span > 0 else max(abs(low) * RANGE_MARGIN, 1.0)
    lo, hi = low - pad, high + pad
    if low >= 0:
        lo = max(lo, 0.0)
    if integer:
        return math.floor(lo), math.ceil(hi)
    step = 10.0 ** (math.floor(math.log10(pad)) - 2)
    rounded = (round(math.floor(lo / step) * step, 12), round(math.ceil(hi / step) * step, 12))
    return rounded if rounded[0] <= low and rounded[1] >= high else (lo, hi)


def between(column: str, low: float, high: float, integer: bool) -> dict[str, Any]:
    lo, hi = widened(low, high, integer)
    return expect("column_values_to_be_between", column=column, min_value=lo, max_value=hi)


def raw_suite(name: str, profile: PartitionProfile, key: str) -> dict[str, Any]:
    expectations = table_checks(profile.names, key)
    for column in profile.columns:
        if column.name != key:
            expectations += not_null(column.name, column.null_share)
    for column in profile.columns:
        expectations += _raw_values(column, key)
    return suite(
        f"{name}.raw.{profile.dataset}",
        f"Raw {profile.dataset} partition, inferred by `batchscore pipelines new` from "
        f"dt={profile.dt.isoformat()} ({profile.rows} rows): review the bounds and the categories.",
        {c.name: c.arrow_type for c in profile.columns},
        expectations,
    )


def _raw_values(column: ColumnProfile, key: str) -> list[dict[str, Any]]:
    if column.name == key:
        return []
    if column.kind in ("integer", "float") and column.minimum is not None and column.maximum is not None:
        return [between(column.name, column.minimum, column.maximum, column.kind == "integer")]
    if column.kind == "string" and column.values:
        return [
            expect(
                "column_values_to_be_in_set",
                column=column.name,
                value_set=list(column.values),
                mostly=CATEGORY_MOSTLY,
            )
        ]
    return []


def features_suite(name: str, profile: PartitionProfile, key: str, plan: FeaturePlan) -> dict[str, Any]:
    expectations = table_checks([key, *plan.names], key)
    expectations += [e for f in plan.features for e in not_null(f.name, _feature_null_share(f, profile))]
    expectations += [_feature_values(f, profile) for f in plan.features]
    return suite(
        f"{name}.features",
        f"Output of features.{name}: float32 values in range; missing only where the feature is nullable.",
        {key: output_key_type(_key_profile(profile, key)), **dict.fromkeys(plan.names, "float")},
        expectations,
    )


def _key_profile(profile: PartitionProfile, key: str) -> ColumnProfile:
    column = profile.column(key)
    assert column is not None, key
    return column


def _feature_null_share(feature: PlannedFeature, profile: PartitionProfile) -> float:
    if not feature.nullable:
        return 0.0
    column = profile.column(feature.column)
    observed = column.null_share if column is not None else 0.0
    # an ordinal code is also missing for values not seen when profiled
    return observed + (1 - CATEGORY_MOSTLY if feature.kind == "ordinal" else 0.0)


def _feature_values(feature: PlannedFeature, profile: PartitionProfile) -> dict[str, Any]:
    if feature.kind == "bool":
        return expect("column_values_to_be_in_set", column=feature.name, value_set=[0.0, 1.0])
    if feature.kind == "ordinal":
        return expect(
            "column_values_to_be_between",
            column=feature.name,
            min_value=0,
            max_value=len(feature.categories) - 1,
        )
    column = profile.column(feature.column)
    assert column is not None and column.minimum is not None and column.maximum is not None
    return between(feature.name, column.minimum, column.maximum, integer=False)


def scores_columns(key: str, task: str, classes: list[str], key_type: str = "int64") -> dict[str, str]:
    """The scores partition's contract for a task: key, score, model_version, run_date (+ classes)."""
    columns = {key: key_type, "score": "double", "model_version": "int64", "run_date": "date32[day]"}
    if task == "multiclass":
        columns["predicted_class"] = "string"
        columns.update({f"p_{c}": "double" for c in classes})
    return columns


def scores_suite(
    name: str, key: str, task: str, classes: list[str], key_type: str = "int64"
) -> dict[str, Any]:
    columns = scores_columns(key, task, classes, key_type)
    expectations = table_checks(list(columns), key)
    expectations.append(expect("column_values_to_not_be_null", column="score"))
    if task in ("binary", "multiclass"):
        expectations.append(expect("column_values_to_be_between", column="score", min_value=0, max_value=1))
    expectations += [expect("column_values_to_not_be_null", column=c) for c in ("model_version", "run_date")]
    if task == "multiclass":
        expectations += [
            expect("column_values_to_not_be_null", column="predicted_class"),
            expect("column_values_to_be_in_set", column="predicted_class", value_set=list(classes)),
        ]
        for c in classes:
            expectations += [
                expect("column_values_to_not_be_null", column=f"p_{c}"),
                expect("column_values_to_be_between", column=f"p_{c}", min_value=0, max_value=1),
            ]
    notes = {
        "binary": "One probability in [0, 1] per entity, stamped with the pinned model version.",
        "regression": "One predicted value per entity (no range: review one), stamped with the model version.",
        "multiclass": "The top class's probability, the class and one probability per class, per entity.",
    }[task]
    return suite(f"{name}.scores", notes, columns, expectations)
