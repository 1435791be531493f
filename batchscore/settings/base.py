"""What every settings module shares: the repo root, the environment variable names,
ConfigError and the strict pydantic base."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from batchscore.errors import PermanentFailure

REPO_ROOT = Path(__file__).resolve().parents[2]

IDENTIFIER = r"^[a-z][a-z0-9_]{0,62}$"
Identifier = Annotated[str, Field(pattern=IDENTIFIER)]

ENV_HOME = "BATCHSCORE_HOME"
ENV_LAKE_URL = "BATCHSCORE_LAKE_URL"
ENV_WAREHOUSE_URL = "BATCHSCORE_WAREHOUSE_URL"
ENV_SPARK_MASTER = "BATCHSCORE_SPARK_MASTER"
ENV_PIPELINES_DIR = "BATCHSCORE_PIPELINES_DIR"
ENV_ALERT_WEBHOOK = "BATCHSCORE_ALERT_WEBHOOK"
ENV_PUSHGATEWAY_URL = "BATCHSCORE_PUSHGATEWAY_URL"
ENV_PII_KEY = "BATCHSCORE_PII_KEY"
ENV_S3_ENDPOINT_URL = "BATCHSCORE_S3_ENDPOINT_URL"
ENV_S3_CONN_ID = "BATCHSCORE_S3_CONN_ID"
ENV_LAKE_CACHE_DIR = "BATCHSCORE_LAKE_CACHE_DIR"
ENV_SPARK_EXECUTOR_MEMORY = "BATCHSCORE_SPARK_EXECUTOR_MEMORY"
ENV_SPARK_EXECUTOR_CORES = "BATCHSCORE_SPARK_EXECUTOR_CORES"
ENV_SPARK_PY_FILES = "BATCHSCORE_SPARK_PY_FILES"
ENV_SPARK_WARMUP = "BATCHSCORE_SPARK_WARMUP"
ENV_AIRFLOW_DB_URL = "BATCHSCORE_AIRFLOW_DB_URL"
ENV_AIRFLOW_EXECUTOR = "BATCHSCORE_AIRFLOW_EXECUTOR"
ENV_AIRFLOW_PORT = "BATCHSCORE_AIRFLOW_PORT"
ENV_CELERY_BROKER_URL = "BATCHSCORE_CELERY_BROKER_URL"
ENV_CELERY_RESULT_BACKEND = "BATCHSCORE_CELERY_RESULT_BACKEND"
ENV_SERVE_DB_URL = "BATCHSCORE_SERVE_DB_URL"
ENV_SERVE_TOKENS_FILE = "BATCHSCORE_SERVE_TOKENS_FILE"


class ConfigError(PermanentFailure, ValueError):
    """A pipeline file or an environment setting is invalid; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _optional_path(value: str | None, home: Path) -> Path | None:
    return Path(_absolute(value, home)) if value else None


def _absolute(value: str, home: Path) -> str:
    if "://" in value:
        return value
    path = Path(value)
    return str(path if path.is_absolute() else (home / path).resolve())


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        got = f" (got {err['input']!r})" if err["type"] != "missing" else ""
        problems.append(f"{where}: {err['msg']}{got}")
    return "; ".join(problems)
