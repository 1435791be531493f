"""`batchscore pipelines new` and `validate`: tiny Parquet partitions in tmp_path, files written
under a tmp root (never the repository), outputs that load and a raw suite that passes."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchscore.authoring.check import check_pipeline, load_features
from batchscore.authoring.design import feature_name
from batchscore.authoring.expectations import scores_suite, widened
from batchscore.authoring.scaffold import new_pipeline
from batchscore.cli import main
from batchscore.errors import BadInput
from batchscore.quality.suites import load_suite
from batchscore.quality.validation import validate_table
from batchscore.settings import REPO_ROOT, load_pipeline
from batchscore.storage.lake import Lake

DAY = date(2026, 11, 3)
ROWS = 60


def accounts(rows: int = ROWS) -> pa.Table:
    """A string key, a nullable float, an int, a bool, low- and high-cardinality strings, a date,
    a binary label and a three-class label."""
    return pa.table(
        {
            "account_id": pa.array([f"a{i:04d}" for i in range(rows)]),
            "balance": pa.array([i * 1.5 if i % 5 else None for i in range(rows)], pa.float64()),
            "visits": pa.array([i % 7 for i in range(rows)], pa.int32()),
            "is_vip": pa.array([i % 3 == 0 for i in range(rows)]),
            "plan": pa.array([("basic", "gold", "silver")[i % 3] for i in range(rows)]),
            "comment": pa.array([f"note {i}" for i in range(rows)]),
            "signup": pa.array([date(2026, 1, 1 + i % 28) for i in range(rows)]),
            "churned": pa.array([i % 2 for i in range(rows)], pa.int8()),
            "segment": pa.array([("x", "y", "z")[i % 3] for i in range(rows)]),
        }
    )


def land(lake: Path, dataset: str, day: date, table: pa.Table, complete: bool = True) -> Path:
    partition = lake / "raw" / dataset / f"dt={day.isoformat()}"
    partition.mkdir(parents=True)
    pq.write_table(table, partition / "part-00000.parquet")
    if complete:
        (partition / "_SUCCESS").touch()
    return partition


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lake with raw/accounts/dt=2026-11-03, the environment pointing at it and tmp pipelines."""
    land(tmp_path / "lake", "accounts", DAY, accounts())
    (tmp_path / "pipelines").mkdir()
    monkeypatch.setenv("BATCHSCORE_HOME", str(tmp_path))
    monkeypatch.setenv("BATCHSCORE_LAKE_URL", str(tmp_path / "lake"))
    monkeypatch.setenv("BATCHSCORE_PIPELINES_DIR", str(tmp_path / "pipelines"))
    return tmp_path


def new(home: Path, name: str = "acct", **options):
    options.setdefault("dataset", "accounts")
    options.setdefault("entity_key", "account_id")
    return new_pipeline(
        name,
        options.pop("dataset"),
        options.pop("entity_key"),
        lake=Lake(str(home / "lake")),
        pipelines_dir=home / "pipelines",
        root=home,
        **options,
    )


def written(home: Path) -> list[str]:
    return sorted(
        p.relative_to(home).as_posix()
        for folder in ("pipelines", "features", "expectations")
        for p in (home / folder).rglob("*")
        if p.is_file()
    )


def test_new_pipeline_writes_files_that_load_and_whose_raw_suite_passes(home):
    result = new(home, label="churned")

    assert written(home) == [
        "expectations/acct/features.json",
        "expectations/acct/raw.json",
        "expectations/acct/scores.json",
        "features/acct.py",
        "pipelines/acct.yaml",
    ]
    assert not (REPO_ROOT / "features" / "acct.py").exists()
    pipeline = load_pipeline(home / "pipelines" / "acct.yaml")
    assert (pipeline.dataset.name, pipeline.dataset.entity_key) == ("accounts", "account_id")
    assert (pipeline.model.name, pipeline.model.alias, pipeline.model.task) == (
        "acct_model",
        "champion",
        "binary",
    )
    assert (pipeline.labels.dataset, pipeline.labels.column) == ("accounts", "churned")
    assert pipeline.schedule.start_date == DAY and not pipeline.schedule.catchup
    assert pipeline.features == "features.acct"

    feature_set = load_features("features.acct", home)
    assert (feature_set.source_dataset, feature_set.entity_key, feature_set.version) == (
        "accounts",
        "account_id",
        1,
    )
    by_name = {f.name: f for f in feature_set.features}
    assert list(by_name) == ["balance", "visits", "is_vip", "plan", "segment"] == result.features
    assert (by_name["balance"].expr, by_name["balance"].nullable) == ("balance", True)
    assert (by_name["visits"].expr, by_name["visits"].nullable) == ("visits", False)
    assert by_name["is_vip"].expr == "CASE WHEN is_vip THEN 1 ELSE 0 END"
    assert by_name["plan"].expr == "CASE plan WHEN 'basic' THEN 0 WHEN 'gold' THEN 1 WHEN 'silver' THEN 2 END"
    assert by_name["plan"].nullable
    module = (home / "features" / "acct.py").read_text()
    assert "#   comment: string with 60 distinct values" in module
    assert "#   signup: a date or time" in module
    assert [c for c, _ in result.skipped] == ["comment", "signup"]

    for stage in ("raw", "features", "scores"):
        path = home / "expectations" / "acct" / f"{stage}.json"
        assert len(load_suite(path).expectations) == len(json.loads(path.read_text())["expectations"])
    raw = load_suite(home / "expectations" / "acct" / "raw.json")
    outcome = validate_table(
        pq.read_table(home / "lake" / "raw" / "accounts" / f"dt={DAY}" / "part-00000.parquet"),
        raw,
        pipeline="acct",
        dataset="accounts",
        stage="raw",
        partition=str(DAY),
        report_dir=home / "report",
        raise_on_failure=False,
    )
    assert outcome.success, outcome.summary()
    assert outcome.passed == outcome.evaluated == len(raw.expectations)
    assert check_pipeline("acct", home / "pipelines", home)[-1].startswith("OK columns")


def test_inferred_bounds_are_loose_and_typed(home):
    new(home)
    raw = json.loads((home / "expectations" / "acct" / "raw.json").read_text())
    by_check = {(e["type"], e["kwargs"].get("column")): e["kwargs"] for e in raw["expectations"]}
    assert raw["meta"]["schema"]["visits"] == "int32" and raw["meta"]["schema"]["account_id"] == "string"
    visits = by_check[("expect_column_values_to_be_between", "visits")]
    assert (visits["min_value"], visits["max_value"]) == (0, 7)
    assert all(isinstance(visits[k], int) for k in ("min_value", "max_value"))
    balance = by_check[("expect_column_values_to_be_between", "balance")]
    assert balance["min_value"] <= 1.5 and balance["max_value"] >= 88.5 * 1.05
    assert by_check[("expect_column_values_to_not_be_null", "balance")]["mostly"] == 0.75
    assert "mostly" not in by_check[("expect_column_values_to_not_be_null", "visits")]
    plan = by_check[("expect_column_values_to_be_in_set", "plan")]
    assert plan["value_set"] == ["basic", "gold", "silver"] and plan["mostly"] == 0.99
    assert ("expect_column_values_to_be_in_set", "comment") not in by_check
    scores = json.loads((home / "expectations" / "acct" / "scores.json").read_text())
    assert scores["meta"]["schema"]["account_id"] == "string"
    features = json.loads((home / "expectations" / "acct" / "features.json").read_text())
    assert features["meta"]["schema"] == {
        "account_id": "string",
        **dict.fromkeys(["balance", "visits", "is_vip", "plan", "churned", "segment"], "float"),
    }


def test_integer_key_multiclass_features_pass_their_suite(home):
    """Features computed (with DuckDB, same SQL) from an integer-keyed partition pass the features suite."""
    import duckdb

    members = (
        accounts().drop_columns(["account_id"]).append_column("id", pa.array(range(1, ROWS + 1), pa.int64()))
    )
    land(home / "lake", "members", DAY, members)
    result = new(home, "members", dataset="members", entity_key="id", label="segment", task="multiclass")
    assert result.classes == ["x", "y", "z"]
    pipeline = load_pipeline(home / "pipelines" / "members.yaml")
    assert pipeline.model.classes == ["x", "y", "z"]
    scores = load_suite(home / "expectations" / "members" / "scores.json")
    assert list(scores.schema) == [
        "id",
        "score",
        "model_version",
        "run_date",
        "predicted_class",
        "p_x",
        "p_y",
        "p_z",
    ]

    feature_set = load_features("features.members", home)
    select = ", ".join(f"CAST({f.expr} AS FLOAT) AS {f.name}" for f in feature_set.features)
    computed = duckdb.sql(f"SELECT CAST(id AS BIGINT) AS id, {select} FROM members").fetch_arrow_table()
    features = load_suite(home / "expectations" / "members" / "features.json")
    outcome = validate_table(
        computed,
        features,
        pipeline="members",
        dataset="members_features",
        stage="features",
        partition=str(DAY),
        report_dir=home / "report",
        raise_on_failure=False,
    )
    assert outcome.success, outcome.summary()


def test_scores_suite_follows_the_task():
    def ranged(suite):
        return {
            e["kwargs"]["column"]
            for e in suite["expectations"]
            if e["type"] == "expect_column_values_to_be_between"
        }

    binary, regression = scores_suite("p", "id", "binary", []), scores_suite("p", "id", "regression", [])
    assert (
        list(binary["meta"]["schema"])
        == list(regression["meta"]["schema"])
        == ["id", "score", "model_version", "run_date"]
    )
    assert ranged(binary) == {"score"} and ranged(regression) == set()
    assert ranged(scores_suite("p", "id", "multiclass", ["a", "b", "c"])) == {"score", "p_a", "p_b", "p_c"}


def test_widened_ranges_never_tighten():
    assert widened(3, 3, integer=True) == (2, 4)
    assert widened(-5, 5, integer=True) == (-6, 6)
    for low, high in [(0.1234, 0.5678), (-1e6, 3.3), (1e-9, 2e-9), (42.0, 42.0)]:
        lo, hi = widened(low, high, integer=False)
        assert lo <= low and hi >= high
    assert feature_name("Monthly Charges", set()) == "monthly_charges"
    assert feature_name("2nd", {"f_2nd"}) == "f_2nd_2"


def refusal(home: Path, **options) -> str:
    before = written(home)
    with pytest.raises(BadInput) as caught:
        new(home, **options)
    assert written(home) == before, "a refusal wrote files"
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("existing", ["pipelines/acct.yaml", "features/acct.py", "expectations/acct"])
def test_refuses_a_name_that_exists(home, existing):
    path = home / existing
    path.parent.mkdir(parents=True, exist_ok=True)
    if "." in path.name:
        path.write_text("")
    else:
        path.mkdir()
    assert "exists already" in refusal(home)


@pytest.mark.parametrize("name", ["Acct", "1acct", "acct-2", "compute_features"])
def test_refuses_a_bad_name(home, name):
    assert repr(name) in refusal(home, name=name)


def test_refuses_missing_or_incomplete_partitions(home):
    land(home / "lake", "accounts", date(2026, 11, 4), accounts(), complete=False)
    assert "2026-11-03" in refusal(home, dt=date(2026, 11, 5))
    assert "not complete" in refusal(home, dt=date(2026, 11, 4))
    assert "no complete partition" in refusal(home, dataset="orders")
    # the newest complete partition is the default
    assert new(home).dt == DAY


def test_refuses_bad_keys_labels_and_tasks(home):
    assert "columns: account_id, balance" in refusal(home, entity_key="customer_id")
    assert "not unique" in refusal(home, entity_key="plan")
    assert "is double" in refusal(home, entity_key="balance")
    assert "--label column 'outcome' is not in" in refusal(home, label="outcome")
    assert "unknown task 'ranking'" in refusal(home, task="ranking")
    assert "needs --label" in refusal(home, task="multiclass")
    assert "at least 3" in refusal(home, task="multiclass", label="churned")


def test_refuses_a_key_with_nulls(home):
    keys = pa.array([None, *[f"a{i}" for i in range(1, ROWS)]], pa.string())
    land(home / "lake", "holes", DAY, accounts().set_column(0, "account_id", keys))
    assert "1 null(s)" in refusal(home, dataset="holes")


def test_refuses_nan(home):
    table = accounts().set_column(1, "balance", pa.array([float("nan")] * ROWS))
    land(home / "lake", "nan_accounts", DAY, table)
    assert "NaN" in refusal(home, dataset="nan_accounts")


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def land_labels(home: Path, dataset: str = "acct_labels") -> Path:
    """A labels partition with the key and the columns the scaffold's placeholder names."""
    table = pa.table(
        {"account_id": [f"a{i:04d}" for i in range(3)], "label": [0, 1, 0], "label_date": [DAY] * 3}
    )
    return land(home / "lake", dataset, DAY, table)


def test_cli_new_validate_and_list(home, capsys, spark):
    land_labels(home)
    code, out, _ = cli(
        capsys,
        "pipelines",
        "new",
        "acct",
        "--dataset",
        "accounts",
        "--entity-key",
        "account_id",
        "--root",
        str(home),
    )
    assert code == 0 and "wrote" in out and "OK raw suite passes" in out
    code, out, _ = cli(capsys, "pipelines", "validate", "acct", "--root", str(home))
    assert code == 0 and out.strip().splitlines()[-1] == "OK acct"
    code, out, _ = cli(capsys, "pipelines")
    assert code == 0 and out.startswith("acct ")
    code, out, _ = cli(capsys, "pipelines", "--json")
    assert code == 0 and json.loads(out)[0]["name"] == "acct"


@pytest.mark.parametrize(
    "argv",
    [
        ["new", "acct", "--dataset", "accounts", "--entity-key", "nope"],
        ["new", "acct", "--dataset", "accounts", "--entity-key", "account_id", "--date", "2026-13-01"],
        ["new", "acct", "--dataset", "accounts", "--entity-key", "account_id", "--task", "ranking"],
        ["validate", "nope"],
    ],
)
def test_cli_refusals_exit_2_with_one_line(home, capsys, argv):
    code, out, err = cli(capsys, "pipelines", *argv, "--root", str(home))
    assert code == 2 and not out
    assert err.startswith("error: ") and err.count("\n") == 1
    assert written(home) == []


def test_validate_lists_a_feature_naming_a_missing_column_and_a_misnamed_labels_dataset(home, capsys, spark):
    new(home)
    module = home / "features" / "acct.py"
    module.write_text(
        module.read_text().replace('Feature("visits", "visits")', 'Feature("visits", "visitz")')
    )
    capsys.readouterr()  # what authoring printed and logged
    code, out, err = cli(capsys, "pipelines", "validate", "acct", "--root", str(home))
    assert code == 2 and "OK acct" not in out
    problems = err.splitlines()
    assert problems[0] == "error: 2 problems in acct:" and len(problems) == 3
    assert "feature visits: [UNRESOLVED_COLUMN" in problems[1] and "`visitz`" in problems[1]
    assert problems[1].endswith("(SQL: visitz)")
    assert (
        "labels dataset 'acct_labels' (labels.dataset in the pipeline file) has no partition" in problems[2]
    )
    assert "(raw datasets: accounts)" in problems[2]


def test_validate_names_a_features_module_that_raises_on_import_in_one_line(home, capsys, spark):
    new(home)
    land_labels(home)
    module = home / "features" / "acct.py"
    module.write_text(module.read_text() + '\nraise RuntimeError("no such table: lookups")\n')
    capsys.readouterr()
    code, _, err = cli(capsys, "pipelines", "validate", "acct", "--root", str(home))
    assert code == 2
    assert err == "error: features module features.acct does not load: RuntimeError: no such table: lookups\n"
    code, _, err = cli(capsys, "-v", "pipelines", "validate", "acct", "--root", str(home))
    assert code == 2 and "Traceback (most recent call last)" in err and 'acct.py", line' in err


def test_validate_passes_churn_and_compares_its_champion(tmp_path, monkeypatch, capsys, spark):
    from batchscore.models.registry import ModelRegistry
    from features import load_feature_set

    monkeypatch.setenv("BATCHSCORE_HOME", str(tmp_path))
    monkeypatch.setenv("BATCHSCORE_LAKE_URL", str(tmp_path / "lake"))
    labels = pa.table({"customer_id": [1, 2], "churned": [0, 1], "label_date": [DAY, DAY]})
    land(tmp_path / "lake", "churn_labels", DAY, labels)
    code, out, err = cli(capsys, "pipelines", "validate", "churn")
    assert code == 0, err
    assert "features compile on Spark" in out and "no 'champion' version yet" in out
    assert out.splitlines()[-1] == "OK churn"

    feature_set = load_feature_set("features.churn")
    registry = ModelRegistry(Lake(str(tmp_path / "lake")), "churn_xgb")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.json").write_text("{}")
    names = feature_set.names[:-1]  # trained before region_code was added
    meta = {"feature_set": {"hash": feature_set.content_hash, "features": names}}
    registry.move_alias(
        "champion", registry.register(tmp_path / "src", meta).version, reason="t", expected_current=None
    )
    code, out, err = cli(capsys, "pipelines", "validate", "churn")
    assert code == 2 and "model churn_xgb v1 (champion) was trained on other features" in err
    assert "missing from the model region_code; not in the feature set none" in err


def test_validate_catches_files_that_disagree(home):
    new(home)
    module = home / "features" / "acct.py"
    module.write_text(module.read_text().replace('source_dataset="accounts"', 'source_dataset="orders"'))
    with pytest.raises(BadInput, match="source_dataset is 'orders'"):
        check_pipeline("acct", home / "pipelines", home)
    module.write_text(module.read_text().replace('source_dataset="orders"', 'source_dataset="accounts"'))
    scores_path = home / "expectations" / "acct" / "scores.json"
    scores = scores_path.read_text()
    scores_path.write_text(scores.replace('"account_id": "string"', '"account_id": "int64"'))
    with pytest.raises(BadInput, match="declared int64, but a string raw key"):
        check_pipeline("acct", home / "pipelines", home)
    scores_path.write_text(scores)
    suite_path = home / "expectations" / "acct" / "features.json"
    suite = json.loads(suite_path.read_text())
    del suite["meta"]["schema"]["plan"]
    suite["expectations"] = [
        e
        for e in suite["expectations"]
        if e["kwargs"].get("column") != "plan" and e["type"] != "expect_table_columns_to_match_set"
    ]
    suite_path.write_text(json.dumps(suite))
    with pytest.raises(BadInput, match="missing plan"):
        check_pipeline("acct", home / "pipelines", home)


def test_a_long_name_still_writes_valid_yaml(home):
    """Values longer than the comment column keep a space before `#` (else YAML fails to parse)."""
    new(home, "parcel_eta_with_a_rather_long_name")
    pipeline = load_pipeline(home / "pipelines" / "parcel_eta_with_a_rather_long_name.yaml")
    assert pipeline.features == "features.parcel_eta_with_a_rather_long_name"
