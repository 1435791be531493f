"""Gates on tiny frames: each kind of bad input fails with a message that names what failed."""

import json
from datetime import date

import numpy as np
import pytest

from batchscore.seed import SeedSpec, customers_snapshot
from batchscore.settings import REPO_ROOT
from batchscore.validation import SuiteError, ValidationFailed, load_suite, validate_frame

SUITES = REPO_ROOT / "expectations" / "churn"


def customers(n=200):
    table, _ = customers_snapshot(SeedSpec(rows=n, seed=3), date(2026, 11, 21))
    return table.to_pandas()


def scores(n=50):
    import pandas as pd

    return pd.DataFrame(
        {
            "customer_id": np.arange(n, dtype=np.int64),
            "score": np.linspace(0, 1, n),
            "model_version": np.ones(n, dtype=np.int64),
            "run_date": [date(2026, 11, 21)] * n,
        }
    )


def run(df, suite, tmp_path, **kw):
    return validate_frame(
        df,
        SUITES / f"{suite}.json",
        pipeline="churn",
        dataset=suite,
        stage=suite,
        partition=f"lake/{suite}/dt=2026-11-21",
        report_dir=tmp_path / suite,
        **kw,
    )


@pytest.mark.parametrize(("suite", "count"), [("raw", 53), ("features", 52), ("scores", 8)])
def test_shipped_suites_load_completely(suite, count):
    declared = json.loads((SUITES / f"{suite}.json").read_text())["expectations"]
    assert len(load_suite(SUITES / f"{suite}.json").expectations) == len(declared) == count


def test_valid_partitions_pass_and_write_reports(tmp_path):
    outcome = run(customers(), "raw", tmp_path)
    assert outcome.success and outcome.evaluated == 53 and outcome.passed == 53 and outcome.rows == 200
    assert run(scores(), "scores", tmp_path).success
    document = json.loads((tmp_path / "raw" / "result.json").read_text())
    assert document["outcome"]["success"] is True and len(document["expectations"]) == 53


def broken(kind):
    df = customers()
    if kind == "missing column":
        return df.drop(columns=["plan"]), "expect_table_columns_to_match_set"
    if kind == "extra column":
        return df.assign(surprise=1), "expect_table_columns_to_match_set"
    if kind == "null key":
        df["customer_id"] = df["customer_id"].astype("float64")
        df.loc[0, "customer_id"] = np.nan
        return df, "expect_column_values_to_not_be_null on customer_id: 1 unexpected"
    if kind == "duplicate key":
        df.loc[1, "customer_id"] = df.loc[0, "customer_id"]
        return df, "expect_column_values_to_be_unique on customer_id: 2 unexpected"
    if kind == "out of range":
        df.loc[0, "tenure_months"] = 5000
        return df, "expect_column_values_to_be_between on tenure_months: 1 unexpected"
    if kind == "unknown category":
        df.loc[0, "contract"] = "lifetime"
        return df, 'expect_column_values_to_be_in_set on contract: 1 unexpected (0.5%), e.g. ["lifetime"]'
    if kind == "inf value":
        df.loc[0, "monthly_charges"] = np.inf
        return df, "expect_column_values_to_be_between on monthly_charges: 1 unexpected"
    if kind == "nulls beyond tolerance":
        df.loc[: len(df) // 2, "credit_score"] = None
        return df, "expect_column_values_to_not_be_null on credit_score"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "missing column",
        "extra column",
        "null key",
        "duplicate key",
        "out of range",
        "unknown category",
        "inf value",
        "nulls beyond tolerance",
    ],
)
def test_bad_raw_input_fails_with_a_clear_message(tmp_path, kind):
    df, expected = broken(kind)
    with pytest.raises(ValidationFailed) as err:
        run(df, "raw", tmp_path)
    message = str(err.value)
    assert "validation FAILED: pipeline churn, dataset raw (raw), partition lake/raw/dt=2026-11-21" in message
    assert expected in message
    assert str(tmp_path / "raw" / "report.html") in message
    assert err.value.result.success is False


def test_nan_score_fails_the_scores_gate(tmp_path):
    df = scores()
    df.loc[3, "score"] = np.nan
    with pytest.raises(ValidationFailed, match="expect_column_values_to_not_be_null on score: 1 unexpected"):
        run(df, "scores", tmp_path)


def test_warning_only_expectation_is_reported_not_fatal(tmp_path):
    df = customers()
    df["discount_pct"] = 60.0
    outcome = run(df, "raw", tmp_path)
    assert outcome.success
    assert [(f.type, f.severity) for f in outcome.failed] == [("expect_column_mean_to_be_between", "warning")]


def test_unknown_expectation_type_is_refused_by_name(tmp_path):
    suite = tmp_path / "suite.json"
    suite.write_text(
        json.dumps(
            {
                "name": "s",
                "expectations": [
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
                    {"type": "expect_column_values_to_be_positive", "kwargs": {"column": "a"}},
                ],
            }
        )
    )
    with pytest.raises(
        SuiteError,
        match=r"recognised 1 of 2 expectations; not recognised: 'expect_column_values_to_be_positive'",
    ):
        load_suite(suite)


def test_html_report_is_offline_and_escaped(tmp_path):
    df, _ = broken("unknown category")
    df.loc[1, "contract"] = "<script>alert(1)</script>"
    with pytest.raises(ValidationFailed):
        run(df, "raw", tmp_path)
    page = (tmp_path / "raw" / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "&lt;script&gt;" in page
    assert "expect_column_values_to_be_in_set" in page and "FAILED" in page
