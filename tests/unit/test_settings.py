"""Pipeline files load into typed settings; every mistake names the file, the key and the problem."""

from pathlib import Path

import pytest
import yaml

from batchscore.settings import REPO_ROOT, ConfigError, load_pipeline, load_platform, load_settings

CHURN = REPO_ROOT / "pipelines" / "churn.yaml"


def write_variant(tmp_path: Path, name: str = "churn", **changes: object) -> Path:
    data = yaml.safe_load(CHURN.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(leaf)
        else:
            node[leaf] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_pipeline_loads_with_its_values():
    pipeline = load_pipeline(CHURN)
    assert pipeline.name == "churn"
    assert pipeline.dag_id == "batchscore_churn"
    assert pipeline.scores_table == "scores_churn"
    assert pipeline.drift.thresholds["monthly_charges"] == 0.15
    assert pipeline.schedule.retries == 2


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"drift__threshold": -1}, "drift.threshold: Input should be greater than 0"),
        ({"inference__device": "tpu"}, "inference.device: Input should be 'auto', 'cpu' or 'cuda'"),
        ({"dataset__entity_key": "Customer ID"}, "dataset.entity_key: String should match pattern"),
        ({"model": None}, "model: Field required"),
        ({"schedule__retrys": 3}, "schedule.retrys: Extra inputs are not permitted"),
        ({"features": "os.system"}, "features: String should match pattern"),
    ],
)
def test_invalid_values_name_file_key_and_problem(tmp_path, changes, expected):
    path = write_variant(tmp_path, **changes)
    with pytest.raises(ConfigError) as err:
        load_pipeline(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_name_must_match_file(tmp_path):
    path = write_variant(tmp_path, name="other")
    with pytest.raises(ConfigError, match="name: must match the file name"):
        load_pipeline(path)


def test_broken_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "churn.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline(bad)
    with pytest.raises(ConfigError, match="no such pipeline file"):
        load_pipeline(tmp_path / "missing.yaml")


def test_unknown_pipeline_lists_known_ones():
    with pytest.raises(ConfigError, match=r"unknown pipeline 'fraud'.*known: churn"):
        load_settings("fraud", {})


def test_environment_overrides_lake_warehouse_and_spark(tmp_path):
    platform = load_platform(
        {
            "BATCHSCORE_HOME": str(tmp_path),
            "BATCHSCORE_LAKE_URL": "lake-here",
            "BATCHSCORE_WAREHOUSE_URL": "duckdb:///tmp/w.duckdb",
            "BATCHSCORE_SPARK_MASTER": "spark://127.0.0.1:7077",
        }
    )
    assert platform.lake_url == str(tmp_path / "lake-here")
    assert platform.warehouse_url == "duckdb:///tmp/w.duckdb"
    assert platform.spark_master == "spark://127.0.0.1:7077"


def test_defaults_are_embedded_under_var(tmp_path):
    platform = load_platform({"BATCHSCORE_HOME": str(tmp_path)})
    assert platform.lake_url == str(tmp_path / "var" / "lake")
    assert platform.warehouse_url == f"duckdb://{tmp_path / 'var' / 'warehouse.duckdb'}"
    assert platform.spark_master == "local[*]"


def test_bad_warehouse_url_is_rejected():
    with pytest.raises(
        ConfigError, match="warehouse_url: Value error, must start with duckdb:// or postgresql://"
    ):
        load_platform({"BATCHSCORE_WAREHOUSE_URL": "mysql://x"})


def test_missing_java_is_reported_with_the_fix(monkeypatch, tmp_path):
    from batchscore.compute.spark import JavaMissing, check_java

    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    with pytest.raises(
        JavaMissing, match=r"Spark needs Java 17 or newer.*apt-get install openjdk-17-jre-headless"
    ):
        check_java()
    monkeypatch.delenv("JAVA_HOME")
    assert check_java() >= 17


def test_drift_methods_and_thresholds_per_feature():
    from batchscore.settings import DriftSettings

    drift = DriftSettings(
        method="psi",
        threshold=0.25,
        methods={"age": "ks", "tenure_months": "wasserstein"},
        thresholds={"age": 0.01},
    )
    assert (drift.method_for("age"), drift.threshold_for("age")) == ("ks", 0.01)
    assert (drift.method_for("tenure_months"), drift.threshold_for("tenure_months")) == ("wasserstein", 0.1)
    assert (drift.method_for("score"), drift.threshold_for("score")) == ("psi", 0.25)
    assert DriftSettings(method="ks").threshold_for("x") == 0.05


def test_lifecycle_settings_have_safe_defaults_and_reject_unknown_values(tmp_path):
    pipeline = load_pipeline(CHURN)
    assert pipeline.promotion.auto is False and pipeline.model.fallback == "fail"
    assert pipeline.retrain_dag_id == "batchscore_churn_retrain"
    with pytest.raises(ConfigError, match=r"drift\.method: Input should be 'psi', 'ks' or 'wasserstein'"):
        load_pipeline(write_variant(tmp_path, drift__method="chi2"))
    with pytest.raises(ConfigError, match=r"model\.fallback: Input should be 'fail' or 'previous_champion'"):
        load_pipeline(write_variant(tmp_path, model__fallback="latest"))


def test_context_columns_are_listed_in_order_and_never_personal_data(tmp_path):
    assert load_pipeline(CHURN).output.context_columns == ["region", "plan", "contract"]
    for columns, expected in [
        (["region", "email"], "output.context_columns: email listed in dataset.pii_columns"),
        (["customer_id"], "output.context_columns: customer_id is the entity key, published already"),
        (["score", "plan"], "output.context_columns: Value error, score: already a published column name"),
        (["p_low"], "p_low: already a published column name"),
        (["plan", "plan"], "columns repeat"),
        (["Plan"], "output.context_columns.0: String should match pattern"),
    ]:
        path = write_variant(tmp_path, output__context_columns=columns)
        with pytest.raises(ConfigError) as err:
            load_pipeline(path)
        assert str(path) in str(err.value) and expected in str(err.value), str(err.value)
    assert load_pipeline(write_variant(tmp_path, output=None)).output.context_columns == []


def test_the_deadline_rule_is_publish_by_local_time_on_the_day():
    from datetime import UTC, date, datetime

    from batchscore.settings import ScheduleSettings, due_at

    day = date(2026, 11, 21)
    assert due_at(day, 6 * 60, "Europe/Berlin").astimezone(UTC) == datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
    # the day clocks move forward (2026-03-29 in Berlin): 06:00 local is 04:00 UTC, not 05:00
    spring = due_at(date(2026, 3, 29), 6 * 60, "Europe/Berlin")
    assert spring.astimezone(UTC) == datetime(2026, 3, 29, 4, 0, tzinfo=UTC)
    assert due_at(day, 23 * 60 + 59, "UTC") == datetime(2026, 11, 21, 23, 59, tzinfo=UTC)
    assert due_at(day, None, "Europe/Berlin") is None
    schedule = ScheduleSettings(start_date=day, publish_by="06:00", timezone="Europe/Berlin")
    assert schedule.due_at(day) == due_at(day, 360, "Europe/Berlin")
    assert ScheduleSettings(start_date=day).due_at(day) is None
