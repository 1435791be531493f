"""Settings for the switches beyond one machine: S3 lake, Airflow metadata DB and executor, Spark cluster."""

from __future__ import annotations

import pytest

from batchscore.orchestration.airflow_server import async_db_url, server_environment
from batchscore.settings import ConfigError, load_airflow_server, load_platform


def test_an_s3_lake_url_is_accepted_with_its_working_copy(tmp_path):
    platform = load_platform({"BATCHSCORE_HOME": str(tmp_path), "BATCHSCORE_LAKE_URL": "s3://my-lake/prod"})
    assert platform.lake_is_s3
    assert platform.lake_working_copy == tmp_path / "var" / "lake-cache"


@pytest.mark.parametrize("url", ["gs://bucket/x", "s3://", "s3://UPPER/x", "http://host/lake"])
def test_unsupported_lake_urls_fail_at_load(url):
    with pytest.raises(ConfigError, match=r"lake URL .*use a local path, file:///path or s3://bucket"):
        load_platform({"BATCHSCORE_LAKE_URL": url})


def test_airflow_defaults_to_sqlite_and_local_executor(tmp_path):
    server = load_airflow_server({"BATCHSCORE_HOME": str(tmp_path), "BATCHSCORE_AIRFLOW_PORT": "18090"})
    env = server_environment(server)
    assert server.home == tmp_path / "var" / "airflow"
    assert (
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        == f"sqlite:///{tmp_path / 'var' / 'airflow' / 'airflow.db'}"
    )
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"].startswith("sqlite+aiosqlite:///")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__API__PORT"] == "18090"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18090/execution/"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == server_environment(server)["AIRFLOW__API_AUTH__JWT_SECRET"]


def test_a_postgres_url_sets_both_engines_to_psycopg3(tmp_path):
    url = "postgresql+psycopg://airflow:pw@db.internal:5432/airflow"
    server = load_airflow_server({"AIRFLOW_HOME": str(tmp_path), "BATCHSCORE_AIRFLOW_DB_URL": url})
    env = server_environment(server)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == url
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] == (
        "postgresql+psycopg_async://airflow:pw@db.internal:5432/airflow"
    )
    assert async_db_url("postgresql://u@h/d") == "postgresql+psycopg_async://u@h/d"


def test_celery_needs_postgres_metadata_and_gets_its_broker(tmp_path):
    with pytest.raises(ConfigError, match="CeleryExecutor needs a PostgreSQL metadata database"):
        load_airflow_server({"AIRFLOW_HOME": str(tmp_path), "BATCHSCORE_AIRFLOW_EXECUTOR": "CeleryExecutor"})
    server = load_airflow_server(
        {
            "AIRFLOW_HOME": str(tmp_path),
            "BATCHSCORE_AIRFLOW_EXECUTOR": "CeleryExecutor",
            "BATCHSCORE_AIRFLOW_DB_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/af",
            "BATCHSCORE_CELERY_BROKER_URL": "redis://127.0.0.1:6379/7",
        }
    )
    env = server_environment(server)
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/7"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql+psycopg://postgres@127.0.0.1:5432/af"


def test_bad_airflow_settings_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="db_url: Value error, must be sqlite"):
        load_airflow_server({"AIRFLOW_HOME": str(tmp_path), "BATCHSCORE_AIRFLOW_DB_URL": "mysql://x"})
    with pytest.raises(ConfigError, match="executor"):
        load_airflow_server(
            {"AIRFLOW_HOME": str(tmp_path), "BATCHSCORE_AIRFLOW_EXECUTOR": "KubernetesExecutor"}
        )
