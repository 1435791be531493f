"""Row quarantine's judgement on tiny frames: each rule against hand-picked rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from batchscore.quality.pii import PiiMask
from batchscore.quality.quarantine import judge, judge_by_column, quarantine_rows, row_rules
from batchscore.quality.suites import load_suite

SCHEMA = {"id": "int64", "x": "double", "plan": "string", "email": "string", "age": "int32"}


def suite_of(tmp_path: Path, *expectations: dict) -> object:
    path = tmp_path / "raw.json"
    path.write_text(json.dumps({"name": "t", "meta": {"schema": SCHEMA}, "expectations": list(expectations)}))
    return load_suite(path)


def frame(**overrides: list) -> pa.Table:
    columns = {
        "id": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "x": pa.array([0.5, 1.0, 2.0, 3.0, 4.0]),
        "plan": pa.array(["basic", "pro", "basic", "pro", "basic"]),
        "email": pa.array(["a@x.org", "b@x.org", "c@x.org", "d@x.org", "e@x.org"]),
        "age": pa.array([30, 40, None, 50, 60], pa.int32()),
    }
    for name, values in overrides.items():
        columns[name] = pa.array(values, columns[name].type)
    return pa.table(columns)


def broken_rows(suite: object, table: pa.Table) -> dict[str, list[int]]:
    verdict = judge(table, row_rules(suite, table.schema))
    return {name: np.flatnonzero(mask).tolist() for name, mask in verdict.broken.items()}


def test_each_row_level_rule_names_exactly_the_rows_that_break_it(tmp_path):
    suite = suite_of(
        tmp_path,
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "plan"}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "x", "min_value": 0, "max_value": 3},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "plan", "value_set": ["basic", "pro"]},
        },
        {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "email", "regex": "^[^@]+@[^@]+$"},
        },
    )
    table = frame(
        id=[1, 2, 2, 4, 2],  # every copy of a duplicated key: rows 1, 2 and 4
        x=[0.5, float("nan"), 2.0, float("inf"), -1.0],  # NaN (row 1), inf above 3 (row 3), below 0 (row 4)
        plan=["basic", None, "gold", "pro", "basic"],  # null (row 1; not also "not in set"), gold (row 2)
        email=["a@x.org", "b@x.org", "c@x.org", "d-at-x.org", None],  # regex (row 3); null is not a mismatch
    )
    assert broken_rows(suite, table) == {
        "unique(id)": [1, 2, 4],
        "not_null(plan)": [1],
        "between(x)": [3, 4],
        "in_set(plan)": [2],
        "match_regex(email)": [3],
        "finite(x)": [1, 3],
    }
    verdict = judge(table, row_rules(suite, table.schema))
    assert verdict.quarantined == 4 and verdict.bad.tolist() == [False, True, True, True, True]
    assert verdict.rules_of(np.array([1])) == ["unique(id); not_null(plan); finite(x)"]

    # A day past the in-memory limits is judged a column at a time: the same verdict, each
    # column read once (whole-day rules such as unique see every row of their column).
    reads: list[str] = []

    def column_of_day(name: str) -> pa.Table:
        reads.append(name)
        return table.select([name])

    by_column = judge_by_column(column_of_day, table.num_rows, row_rules(suite, table.schema))
    assert sorted(reads) == ["email", "id", "plan", "x"]
    assert list(by_column.counts.items()) == list(verdict.counts.items())
    assert by_column.bad.tolist() == verdict.bad.tolist()
    assert {k: v.tolist() for k, v in by_column.broken.items()} == {
        k: v.tolist() for k, v in verdict.broken.items()
    }


def test_tolerant_warning_and_table_level_expectations_never_quarantine(tmp_path):
    suite = suite_of(
        tmp_path,
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "age", "mostly": 0.7}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "age", "min_value": 45, "max_value": 99},
            "severity": "warning",
        },
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 100}},
        {
            "type": "expect_column_mean_to_be_between",
            "kwargs": {"column": "x", "min_value": 0, "max_value": 0.1},
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "age", "min_value": 35, "max_value": 99, "strict_min": True},
        },
    )
    # age null (row 2) is tolerated by `mostly`; ages below 45 only warn; the strict rule breaks row 0
    assert broken_rows(suite, frame(age=[30, 40, None, 50, 35])) == {"between(age)": [0, 4]}


def test_null_keys_are_not_duplicates_of_each_other(tmp_path):
    suite = suite_of(tmp_path, {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}})
    assert broken_rows(suite, frame(id=[None, None, 3, 4, 5])) == {}


@pytest.mark.parametrize("key", [b"deployment-key", None])
def test_held_rows_keep_the_evidence_and_hash_personal_data(tmp_path, key):
    suite = suite_of(tmp_path, {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}})
    table = frame(id=[7, 7, 3, 4, 5], x=[float("nan"), 1.0, 2.0, 3.0, 4.0])
    verdict = judge(table, row_rules(suite, table.schema))
    mask = PiiMask(frozenset({"email"}), key)
    held = quarantine_rows(table, verdict, "id", mask)
    assert held.column_names == ["id", "rule", "row_json"]
    assert held.column("id").to_pylist() == ["7", "7"]
    assert held.column("rule").to_pylist() == ["unique(id); finite(x)", "unique(id)"]
    first = json.loads(held.column("row_json")[0].as_py())
    assert first["x"] == "nan" and first["plan"] == "basic" and first["age"] == 30
    assert "a@x.org" not in held.column("row_json")[0].as_py()
    assert first["email"] == mask.value("a@x.org") != "a@x.org"


def test_bounds_of_another_type_are_cast_or_left_to_the_suite(tmp_path):
    schema = {"id": "int64", "day": "date32[day]", "plan": "string"}
    path = tmp_path / "raw.json"
    expectations = [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "day", "min_value": "2026-01-01", "max_value": "2026-12-31"},
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "plan", "min_value": 1, "max_value": 2},
        },
    ]
    path.write_text(json.dumps({"name": "t", "meta": {"schema": schema}, "expectations": expectations}))
    suite = load_suite(path)
    import datetime as dt

    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "day": pa.array([dt.date(2026, 5, 1), dt.date(2025, 12, 31)], pa.date32()),
            "plan": pa.array(["a", "b"]),
        }
    )
    # the date bounds are compared as dates; text against numbers cannot be: GX gates that one
    assert broken_rows(suite, table) == {"between(day)": [1]}
