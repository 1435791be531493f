"""Settings of the servers batchscore runs: Airflow (`make airflow`) and the read API."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from batchscore.settings.base import (
    ENV_AIRFLOW_DB_URL,
    ENV_AIRFLOW_EXECUTOR,
    ENV_AIRFLOW_PORT,
    ENV_CELERY_BROKER_URL,
    ENV_CELERY_RESULT_BACKEND,
    ENV_HOME,
    ENV_SERVE_DB_URL,
    ENV_SERVE_TOKENS_FILE,
    REPO_ROOT,
    ConfigError,
    _absolute,
    _describe,
    _optional_path,
    _Strict,
)
from batchscore.settings.environment import load_platform


class AirflowServerSettings(_Strict):
    """How `make airflow` runs Airflow: its home, metadata database, executor and port.

    `db_url` unset means SQLite under `home`; a `postgresql+psycopg://` URL switches the
    metadata database to PostgreSQL (the async engine uses psycopg 3 as well).
    """

    home: Path
    db_url: str | None = None
    executor: Literal["LocalExecutor", "CeleryExecutor"] = "LocalExecutor"
    port: int = Field(default=8080, gt=0, lt=65536)
    celery_broker_url: str = "redis://127.0.0.1:6379/0"
    celery_result_backend: str | None = None

    @field_validator("db_url")
    @classmethod
    def _known_db(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(sqlite|postgresql(\+psycopg)?)://", value):
            raise ValueError("must be sqlite:///... or postgresql+psycopg://user@host:port/db")
        return value

    @model_validator(mode="after")
    def _celery_needs_a_server_db(self) -> AirflowServerSettings:
        if self.executor == "CeleryExecutor" and not (self.db_url or "").startswith("postgresql"):
            raise ValueError(
                "CeleryExecutor needs a PostgreSQL metadata database (set BATCHSCORE_AIRFLOW_DB_URL)"
            )
        return self


def load_airflow_server(env: Mapping[str, str] | None = None) -> AirflowServerSettings:
    """Airflow server settings from the environment (`AIRFLOW_HOME` defaults to `var/airflow`)."""
    env = os.environ if env is None else env
    home = Path(env.get(ENV_HOME, REPO_ROOT)).resolve()
    try:
        return AirflowServerSettings(
            home=Path(_absolute(env.get("AIRFLOW_HOME", str(home / "var" / "airflow")), home)),
            db_url=env.get(ENV_AIRFLOW_DB_URL) or None,
            executor=env.get(ENV_AIRFLOW_EXECUTOR) or "LocalExecutor",  # type: ignore[arg-type]
            port=int(env.get(ENV_AIRFLOW_PORT) or 8080),
            celery_broker_url=env.get(ENV_CELERY_BROKER_URL) or "redis://127.0.0.1:6379/0",
            celery_result_backend=env.get(ENV_CELERY_RESULT_BACKEND) or None,
        )
    except (ValidationError, ValueError) as exc:
        detail = _describe(exc) if isinstance(exc, ValidationError) else str(exc)
        raise ConfigError(f"environment: {detail}") from None


class ServeSettings(_Strict):
    """`batchscore serve`: BATCHSCORE_SERVE_DB_URL else the platform's warehouse; the tokens file."""

    warehouse_url: Annotated[str, Field(pattern=r"^(duckdb|postgresql|postgres)://")]
    tokens_file: Path | None = None


def load_serve(env: Mapping[str, str] | None = None) -> ServeSettings:
    env = os.environ if env is None else env
    platform = load_platform(env)
    url, tokens = env.get(ENV_SERVE_DB_URL) or platform.warehouse_url, env.get(ENV_SERVE_TOKENS_FILE)
    try:
        return ServeSettings(warehouse_url=url, tokens_file=_optional_path(tokens, platform.home))
    except ValidationError as exc:
        raise ConfigError(f"environment: {_describe(exc)}") from None
