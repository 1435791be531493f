"""The platform's settings from the environment, and one run's `Settings`."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from batchscore.settings.base import (
    ENV_ALERT_WEBHOOK,
    ENV_HOME,
    ENV_LAKE_CACHE_DIR,
    ENV_LAKE_URL,
    ENV_PII_KEY,
    ENV_PIPELINES_DIR,
    ENV_PUSHGATEWAY_URL,
    ENV_S3_CONN_ID,
    ENV_S3_ENDPOINT_URL,
    ENV_SPARK_EXECUTOR_CORES,
    ENV_SPARK_EXECUTOR_MEMORY,
    ENV_SPARK_MASTER,
    ENV_SPARK_PY_FILES,
    ENV_SPARK_WARMUP,
    ENV_WAREHOUSE_URL,
    REPO_ROOT,
    ConfigError,
    _absolute,
    _describe,
    _optional_path,
    _Strict,
)
from batchscore.settings.pipeline import PipelineSettings, load_pipeline, pipeline_files


class PlatformSettings(_Strict):
    """Where the lake, the warehouse and Spark are; set by the environment."""

    home: Path
    lake_url: str
    warehouse_url: str
    spark_master: str
    pipelines_dir: Path
    alert_webhook: str | None = None
    # Prometheus Pushgateway (`http://host:9091`): each nightly run pushes its metrics there.
    pushgateway_url: str | None = None
    # The per-deployment key that hashes personal data (`dataset.pii_columns`) wherever a value
    # would otherwise be shown (HMAC-SHA256); without one such values are redacted.
    pii_key: SecretStr | None = None
    # S3 lake (`s3://bucket/prefix`): a custom endpoint (MinIO, moto), an optional Airflow
    # connection holding the credentials, and the local working copy Spark reads and writes.
    s3_endpoint_url: str | None = None
    s3_conn_id: str | None = None
    lake_cache_dir: Path | None = None
    # Spark standalone / cluster masters (`spark://host:port`): executor size and the code zip.
    spark_executor_memory: str = "1g"
    spark_executor_cores: int = Field(default=1, gt=0)
    spark_py_files: Path | None = None
    # A run in one process warms Spark and imports Evidently in the background before its stages
    # need them (batchscore/orchestration/warmup.py); BATCHSCORE_SPARK_WARMUP=0 turns it off.
    spark_warmup: bool = True

    @field_validator("warehouse_url")
    @classmethod
    def _known_warehouse(cls, value: str) -> str:
        if not re.match(r"^(duckdb|postgresql|postgres)://", value):
            raise ValueError("must start with duckdb:// or postgresql://")
        return value

    @model_validator(mode="after")
    def _known_lake(self) -> PlatformSettings:
        if "://" in self.lake_url and not re.match(
            r"^(file://|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/|$))", self.lake_url
        ):
            raise ValueError(
                f"lake URL {self.lake_url!r}: use a local path, file:///path or s3://bucket[/prefix]"
            )
        return self

    @property
    def lake_is_s3(self) -> bool:
        return self.lake_url.startswith("s3://")

    @property
    def lake_working_copy(self) -> Path:
        """Where an S3 lake's partitions are staged locally (Spark here has no s3a)."""
        return self.lake_cache_dir or self.home / "var" / "lake-cache"


class Settings(_Strict):
    """Everything one pipeline run needs, passed down explicitly."""

    platform: PlatformSettings
    pipeline: PipelineSettings


def load_platform(env: Mapping[str, str] | None = None) -> PlatformSettings:
    """Platform settings from the environment, defaulting to embedded stores under `var/`."""
    env = os.environ if env is None else env
    home = Path(env.get(ENV_HOME, REPO_ROOT)).resolve()
    var = home / "var"
    try:
        return PlatformSettings(
            home=home,
            lake_url=_absolute(env.get(ENV_LAKE_URL, str(var / "lake")), home),
            warehouse_url=env.get(ENV_WAREHOUSE_URL, f"duckdb://{var / 'warehouse.duckdb'}"),
            spark_master=env.get(ENV_SPARK_MASTER, "local[*]"),
            pipelines_dir=Path(_absolute(env.get(ENV_PIPELINES_DIR, str(REPO_ROOT / "pipelines")), home)),
            alert_webhook=env.get(ENV_ALERT_WEBHOOK) or None,
            pushgateway_url=env.get(ENV_PUSHGATEWAY_URL) or None,
            pii_key=env.get(ENV_PII_KEY) or None,  # type: ignore[arg-type]
            s3_endpoint_url=env.get(ENV_S3_ENDPOINT_URL) or None,
            s3_conn_id=env.get(ENV_S3_CONN_ID) or None,
            lake_cache_dir=_optional_path(env.get(ENV_LAKE_CACHE_DIR), home),
            spark_executor_memory=env.get(ENV_SPARK_EXECUTOR_MEMORY) or "1g",
            spark_executor_cores=env.get(ENV_SPARK_EXECUTOR_CORES) or 1,  # type: ignore[arg-type]
            spark_py_files=_optional_path(env.get(ENV_SPARK_PY_FILES), home),
            spark_warmup=env.get(ENV_SPARK_WARMUP, "1") != "0",
        )
    except ValidationError as exc:
        raise ConfigError(f"environment: {_describe(exc)}") from None


def discover_pipelines(env: Mapping[str, str] | None = None) -> list[PipelineSettings]:
    """Every pipeline declared in the pipelines folder, each validated."""
    return [load_pipeline(path) for path in pipeline_files(load_platform(env).pipelines_dir)]


def load_settings(pipeline: str, env: Mapping[str, str] | None = None) -> Settings:
    """Settings for one named pipeline: its YAML file plus the platform environment."""
    platform = load_platform(env)
    path = platform.pipelines_dir / f"{pipeline}.yaml"
    if not path.exists():
        known = ", ".join(p.stem for p in pipeline_files(platform.pipelines_dir)) or "none"
        raise ConfigError(f"unknown pipeline {pipeline!r}: no {path} (known: {known})")
    return Settings(platform=platform, pipeline=load_pipeline(path))
