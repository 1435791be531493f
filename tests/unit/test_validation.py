"""Gates on tiny tables: the contract, the suites, and each kind of bad value, with clear messages."""

import json
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from batchscore.examples.seed import SeedSpec, customers_snapshot
from batchscore.quality import validation
from batchscore.quality.gx_engine import tune_gx_pandas
from batchscore.quality.outcome import ValidationFailed
from batchscore.quality.suites import SuiteError, contract_violations, load_suite
from batchscore.quality.validation import validate_table
from batchscore.settings import REPO_ROOT

SUITES = REPO_ROOT / "expectations" / "churn"
HEADER = "validation FAILED: pipeline churn, dataset raw (raw), partition lake/raw/dt=2026-11-21"


def customers(n=200) -> pa.Table:
    table, _ = customers_snapshot(SeedSpec(rows=n, seed=3), date(2026, 11, 21))
    return table


def scores(n=50) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(np.arange(n), pa.int64()),
            "score": pa.array(np.linspace(0, 1, n)),
            "model_version": pa.array(np.ones(n, dtype=np.int64)),
            "run_date": pa.array([date(2026, 11, 21)] * n, pa.date32()),
        }
    )


def run(table, suite, tmp_path, **kw):
    return validate_table(
        table,
        load_suite(SUITES / f"{suite}.json"),
        pipeline="churn",
        dataset=suite,
        stage=suite,
        partition=f"lake/{suite}/dt=2026-11-21",
        report_dir=tmp_path / suite,
        **kw,
    )


def replace(table: pa.Table, column: str, values: list, type_=None) -> pa.Table:
    index = table.schema.get_field_index(column)
    return table.set_column(index, column, pa.array(values, type_ or table.schema.field(column).type))


def write_suite(tmp_path, expectations, schema=None):
    path = tmp_path / "suite.json"
    meta = {"schema": schema or {"a": "double"}}
    path.write_text(json.dumps({"name": "s", "meta": meta, "expectations": expectations}))
    return path


@pytest.mark.parametrize(("suite", "count"), [("raw", 56), ("features", 52), ("scores", 8)])
def test_shipped_suites_load_completely(suite, count):
    declared = json.loads((SUITES / f"{suite}.json").read_text())["expectations"]
    loaded = load_suite(SUITES / f"{suite}.json")
    assert len(loaded.expectations) == len(declared) == count
    assert loaded.schema and next(iter(loaded.schema)) == "customer_id"


def test_valid_partitions_pass_and_write_reports(tmp_path):
    outcome = run(customers(), "raw", tmp_path)
    assert outcome.success and outcome.evaluated == 56 and outcome.passed == 56 and outcome.rows == 200
    assert run(scores(), "scores", tmp_path).success
    document = json.loads((tmp_path / "raw" / "result.json").read_text())
    assert document["outcome"]["success"] is True and len(document["expectations"]) == 56
    assert document["contract"]["violations"] == []


def test_a_gate_never_answers_from_the_previous_partitions_metrics(tmp_path):
    good = scores()
    bad = replace(good, "score", [2.0] * good.num_rows)
    assert run(good, "scores", tmp_path).success
    with pytest.raises(ValidationFailed, match="expect_column_values_to_be_between on score: 50 unexpected"):
        run(bad, "scores", tmp_path)
    assert run(good, "scores", tmp_path).success


def test_misspelled_expectation_type_is_refused_by_name(tmp_path):
    path = write_suite(
        tmp_path,
        [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
            {"type": "expect_column_value_to_not_be_null", "kwargs": {"column": "a"}},
        ],
    )
    with pytest.raises(
        SuiteError,
        match=r"GX recognised 1 of 2 expectations; not recognised: 'expect_column_value_to_not_be_null'",
    ):
        load_suite(path)


def test_misspelled_argument_is_refused_by_name(tmp_path):
    path = write_suite(
        tmp_path,
        [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "a", "min_value": 0, "max_vaule": 1},
            }
        ],
    )
    with pytest.raises(
        SuiteError, match=r"not recognised: 'expect_column_values_to_be_between' \(#1\).*max_vaule"
    ):
        load_suite(path)


def test_open_float_range_is_refused_because_it_lets_inf_through(tmp_path):
    path = write_suite(
        tmp_path, [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "a", "min_value": 0}}]
    )
    with pytest.raises(
        SuiteError, match=r"on a \(#1\) needs both min_value and max_value: an open range lets ±inf"
    ):
        load_suite(path)


def test_suite_without_a_contract_or_checking_an_undeclared_column_is_refused(tmp_path):
    path = tmp_path / "suite.json"
    path.write_text(
        json.dumps({"name": "s", "expectations": [{"type": "expect_column_to_exist", "kwargs": {}}]})
    )
    with pytest.raises(SuiteError, match=r"declares no contract: meta\.schema"):
        load_suite(path)
    path = write_suite(tmp_path, [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "b"}}])
    with pytest.raises(SuiteError, match="checks column 'b', which the contract does not declare"):
        load_suite(path)


def test_contract_diff_names_missing_extra_renamed_and_retyped_columns():
    declared = {"id": "int64", "plan": "string", "age": "int32", "score": "double"}
    schema = pa.schema(
        [("id", pa.int64()), ("plan_name", pa.string()), ("age", pa.string()), ("x", pa.bool_())]
    )
    assert contract_violations(declared, schema) == [
        "renamed? column plan (string) is missing and plan_name (string) is not declared: "
        "was plan renamed to plan_name?",
        "missing column score (double)",
        "extra column x (bool) is not declared",
        "retyped column age: declared int32, found string",
    ]
    large = pa.schema(
        [("id", pa.int64()), ("plan", pa.large_string()), ("age", pa.int32()), ("score", pa.float64())]
    )
    assert contract_violations(declared, large) == []


def broken(kind):
    """A raw partition with one kind of defect, and what the gate's message must say about it."""
    table = customers()
    n = table.num_rows
    if kind == "missing column":
        return table.drop_columns(["plan"]), "missing column plan (string)"
    if kind == "renamed column":
        return table.rename_columns(
            ["tariff" if c == "plan" else c for c in table.column_names]
        ), "was plan renamed to tariff?"
    if kind == "extra column":
        return table.append_column(
            "surprise", pa.array([1] * n)
        ), "extra column surprise (int64) is not declared"
    if kind == "strings in a numeric column":
        values = [str(v) for v in table["tenure_months"].to_pylist()]
        return replace(table, "tenure_months", values, pa.string()), (
            "retyped column tenure_months: declared int32, found string"
        )
    if kind == "NaN":
        values = table["monthly_charges"].to_pylist()
        values[4] = float("nan")
        return replace(table, "monthly_charges", values), "NaN in float column monthly_charges: 1 row(s)"
    if kind == "+inf":
        values = table["total_charges"].to_pylist()
        values[0] = float("inf")
        return replace(table, "total_charges", values), (
            'expect_column_values_to_be_between on total_charges: 1 unexpected (0.5155%), e.g. ["inf"]'
        )
    if kind == "-inf":
        values = table["monthly_charges"].to_pylist()
        values[0] = float("-inf")
        return replace(table, "monthly_charges", values), (
            'expect_column_values_to_be_between on monthly_charges: 1 unexpected (0.5%), e.g. ["-inf"]'
        )
    if kind == "null key":
        values = table["customer_id"].to_pylist()
        values[0] = None
        return replace(
            table, "customer_id", values
        ), "expect_column_values_to_not_be_null on customer_id: 1 unexpected"
    if kind == "duplicate key":
        values = table["customer_id"].to_pylist()
        values[1] = values[0]
        return replace(table, "customer_id", values), (
            f"expect_column_values_to_be_unique on customer_id: 2 unexpected (1%), e.g. [{values[0]}, {values[0]}]"
        )
    if kind == "out of range":
        values = table["tenure_months"].to_pylist()
        values[0] = 5000
        return replace(table, "tenure_months", values), (
            "expect_column_values_to_be_between on tenure_months: 1 unexpected (0.5%), e.g. [5000]"
        )
    if kind == "unknown category":
        values = table["contract"].to_pylist()
        values[0] = "lifetime"
        return replace(table, "contract", values), (
            'expect_column_values_to_be_in_set on contract: 1 unexpected (0.5%), e.g. ["lifetime"]'
        )
    if kind == "nulls beyond tolerance":
        mask = pa.array(np.arange(n) <= n // 2)
        nulls = pc.if_else(mask, pa.scalar(None, pa.int32()), table["credit_score"])
        return table.set_column(table.schema.get_field_index("credit_score"), "credit_score", nulls), (
            "expect_column_values_to_not_be_null on credit_score: 111 unexpected (55.5%)"
        )
    if kind == "empty":
        return table.slice(0, 0), "expect_table_row_count_to_be_between: observed 0"
    raise AssertionError(kind)


CATALOGUE = [
    "missing column",
    "renamed column",
    "extra column",
    "strings in a numeric column",
    "NaN",
    "+inf",
    "-inf",
    "null key",
    "duplicate key",
    "out of range",
    "unknown category",
    "nulls beyond tolerance",
    "empty",
]


@pytest.mark.parametrize("kind", CATALOGUE)
def test_bad_raw_input_fails_with_a_clear_message(tmp_path, kind):
    table, expected = broken(kind)
    with pytest.raises(ValidationFailed) as err:
        run(table, "raw", tmp_path)
    message = str(err.value)
    assert message.startswith(HEADER)
    assert expected in message
    assert message.endswith(f"report: {tmp_path / 'raw' / 'report.html'}")
    assert err.value.result.success is False
    document = json.loads((tmp_path / "raw" / "result.json").read_text())
    assert document["outcome"]["success"] is False


def test_contract_failure_is_reported_before_any_statistics(tmp_path):
    table, _ = broken("strings in a numeric column")
    with pytest.raises(ValidationFailed) as err:
        run(table.drop_columns(["plan"]), "raw", tmp_path)
    assert str(err.value).splitlines()[:3] == [
        f"{HEADER}: the partition breaks the contract declared in {SUITES / 'raw.json'}",
        "  - missing column plan (string)",
        "  - retyped column tenure_months: declared int32, found string",
    ]
    assert err.value.result.evaluated == 0
    document = json.loads((tmp_path / "raw" / "result.json").read_text())
    assert document["expectations"] == [] and len(document["contract"]["violations"]) == 2


def test_nan_score_fails_the_scores_gate(tmp_path):
    table = replace(scores(), "score", [float("nan")] + [0.5] * 49)
    with pytest.raises(ValidationFailed, match=r"NaN in float column score: 1 row\(s\)"):
        run(table, "scores", tmp_path)


def test_warning_only_expectation_is_reported_not_fatal(tmp_path):
    table = replace(customers(), "discount_pct", [60.0] * 200)
    outcome = run(table, "raw", tmp_path)
    assert outcome.success
    assert [(f.type, f.severity) for f in outcome.failed] == [("expect_column_mean_to_be_between", "warning")]
    assert "[warning] expect_column_mean_to_be_between on discount_pct: observed 60" in outcome.summary()


def test_html_report_is_offline_and_escaped(tmp_path):
    table = replace(customers(), "contract", ["lifetime", "<script>alert(1)</script>"] + ["one-year"] * 198)
    with pytest.raises(ValidationFailed):
        run(table, "raw", tmp_path)
    page = (tmp_path / "raw" / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "&lt;script&gt;" in page
    assert "expect_column_values_to_be_in_set" in page and "FAILED" in page


FORKED_KINDS = ["+inf", "null key", "duplicate key", "unknown category", "nulls beyond tolerance", "empty"]


@pytest.mark.slow
def test_forked_workers_give_the_same_verdicts_reports_and_messages(tmp_path):
    """Large partitions are validated by forked workers: same verdicts, counts and examples.

    Workers are forked only from a process without other threads, which this test session is
    not; `tests/unit/forked_gate.py` runs the comparison in a fresh process.
    """
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "tests.unit.forked_gate", str(tmp_path), *FORKED_KINDS],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    checks = json.loads(done.stdout.strip().splitlines()[-1])
    assert checks["daemonic_child"] == {"success": True, "passed": 56, "workers": 1}
    assert set(checks["kinds"]) == {*FORKED_KINDS, "clean"}
    for kind, check in checks["kinds"].items():
        assert check["workers"] == [1, 2], kind
        assert check["same_message"] and check["same_results"], kind
        assert check["success"] == (kind == "clean"), kind


def test_a_threaded_process_validates_in_process(tmp_path, monkeypatch):
    import threading

    monkeypatch.setattr(validation, "PARALLEL_MIN_ROWS", 0)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, name="holder", daemon=True)
    other.start()
    try:
        outcome = run(customers(), "raw", tmp_path, workers=2)
    finally:
        stop.set()
    assert outcome.success and outcome.passed == 56 and outcome.workers == 1


def test_decimal_scan_is_skipped_only_for_numeric_arrays():
    from decimal import Decimal

    import great_expectations.util as gx_util

    tune_gx_pandas()
    assert gx_util.does_ndarray_contain_decimal_dtype(np.array([Decimal("1.5"), 2.0], dtype=object))
    assert not gx_util.does_ndarray_contain_decimal_dtype(np.array([1.5, 2.0]))


def test_pii_values_are_hashed_in_results_reports_and_messages(tmp_path):
    """Malformed emails and phones (a warning) show as keyed hashes, never in clear; a hash
    can be matched by whoever holds the value and the key."""
    import hashlib
    import hmac
    from dataclasses import replace as with_field

    from batchscore.quality.pii import PiiMask

    canaries = ["jane.canary.doe@@example", "+1-555-CANARY"]
    table = customers()
    emails = table.column("email").to_pylist()
    phones = table.column("phone").to_pylist()
    emails[3], phones[4] = canaries
    table = replace(replace(table, "email", emails), "phone", phones)
    suite = load_suite(SUITES / "raw.json")
    key = "deployment-key"
    masked = with_field(suite, pii=PiiMask.of(["email", "phone"], key))
    outcome = validate_table(
        table, masked, pipeline="churn", dataset="raw", stage="raw",
        partition="lake/raw/dt=2026-11-21", report_dir=tmp_path / "raw",
    )  # fmt: skip
    assert outcome.success, "malformed contact data is a warning, not a failed gate"
    assert sorted(f.column for f in outcome.failed) == ["email", "phone"]
    shown = [
        outcome.summary(),
        (tmp_path / "raw" / "result.json").read_text(),
        (tmp_path / "raw" / "report.html").read_text(),
    ]
    for text in shown:
        for canary in canaries:
            assert canary not in text
            assert canary.split("@")[0] not in text
    digest = hmac.new(key.encode(), canaries[0].encode(), hashlib.sha256).hexdigest()[:16]
    assert f"pii:{digest}" in shown[0] and f"pii:{digest}" in shown[1]
    rows = json.loads(shown[1])["expectations"]
    assert {r["column"] for r in rows if r.get("pii")} == {"email", "phone"}
    # Without a deployment key the values are redacted; the unmasked suite shows them.
    redacted = with_field(suite, pii=PiiMask.of(["email", "phone"], None))
    unkeyed = validate_table(
        table, redacted, pipeline="churn", dataset="raw", stage="raw",
        partition="lake/raw/dt=2026-11-21", report_dir=tmp_path / "unkeyed",
    )  # fmt: skip
    assert "[redacted]" in unkeyed.summary() and canaries[0] not in unkeyed.summary()
    clear = validate_table(
        table, suite, pipeline="churn", dataset="raw", stage="raw",
        partition="lake/raw/dt=2026-11-21", report_dir=tmp_path / "clear",
    )  # fmt: skip
    assert canaries[0] in clear.summary(), "the test's canary does reach the report unmasked"


def test_pii_mask_covers_column_pairs_and_lists_and_numbers():
    from batchscore.quality.pii import REDACTED, PiiMask

    mask = PiiMask.of(["email", "ssn"], "k")
    assert mask.applies({"column": "email"}) and mask.applies({"column_list": ["id", "ssn"]})
    assert mask.applies({"column_A": "x", "column_B": "email"}) and not mask.applies({"column": "age"})
    assert not PiiMask().applies({"column": "email"})
    hashed = mask.value([123456789, "a@b.c", None, True])
    assert hashed[2:] == [None, True] and all(h.startswith("pii:") and len(h) == 20 for h in hashed[:2])
    assert mask.value(123456789) == mask.value("123456789"), "a value hashes the same whatever its type"
    assert PiiMask.of(["email"], None).value({"x": "a@b.c"}) == {"x": REDACTED}
