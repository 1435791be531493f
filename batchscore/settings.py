"""Typed settings: one YAML file per pipeline plus the platform's environment.

This is the only module that reads environment variables. Everything else receives
a `Settings` object (or parts of it) explicitly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from batchscore.errors import PermanentFailure

REPO_ROOT = Path(__file__).resolve().parent.parent

IDENTIFIER = r"^[a-z][a-z0-9_]{0,62}$"
Identifier = Annotated[str, Field(pattern=IDENTIFIER)]

ENV_HOME = "BATCHSCORE_HOME"
ENV_LAKE_URL = "BATCHSCORE_LAKE_URL"
ENV_WAREHOUSE_URL = "BATCHSCORE_WAREHOUSE_URL"
ENV_SPARK_MASTER = "BATCHSCORE_SPARK_MASTER"
ENV_PIPELINES_DIR = "BATCHSCORE_PIPELINES_DIR"
ENV_ALERT_WEBHOOK = "BATCHSCORE_ALERT_WEBHOOK"
ENV_S3_ENDPOINT_URL = "BATCHSCORE_S3_ENDPOINT_URL"
ENV_S3_CONN_ID = "BATCHSCORE_S3_CONN_ID"
ENV_LAKE_CACHE_DIR = "BATCHSCORE_LAKE_CACHE_DIR"
ENV_SPARK_EXECUTOR_MEMORY = "BATCHSCORE_SPARK_EXECUTOR_MEMORY"
ENV_SPARK_EXECUTOR_CORES = "BATCHSCORE_SPARK_EXECUTOR_CORES"
ENV_SPARK_PY_FILES = "BATCHSCORE_SPARK_PY_FILES"
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


class DatasetSettings(_Strict):
    """The raw entity table the pipeline scores, landed daily in the lake."""

    name: Identifier
    entity_key: Identifier


class LabelSettings(_Strict):
    """Outcomes that land later than the features, in their own daily partitions."""

    dataset: Identifier
    column: Identifier
    date_column: Identifier = "label_date"


Task = Literal["binary", "regression", "multiclass"]


class ModelSettings(_Strict):
    name: Identifier
    # What the model predicts: `binary` publishes a probability in [0, 1] as `score`;
    # `regression` publishes the predicted value as `score`; `multiclass` publishes the top
    # class's probability as `score`, the class as `predicted_class`, and one `p_<class>`
    # column per class (classes listed in `classes`, in the model's output order).
    task: Task = "binary"
    classes: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]{0,40}$")]] = []
    alias: Identifier = "champion"
    # When the champion fails to load or verify: fail the run, or score with the previous
    # champion, alert and record it.
    fallback: Literal["fail", "previous_champion"] = "fail"
    # When set and the registry has this alias, its version is scored in shadow (same pass,
    # own lake partition, published to the shadow table), never into the champion's slice.
    challenger_alias: Identifier | None = None

    @model_validator(mode="after")
    def _classes_fit_the_task(self) -> ModelSettings:
        if self.task == "multiclass" and len(self.classes) < 3:
            raise ValueError("a multiclass model needs `classes:` with at least 3 class names")
        if self.task != "multiclass" and self.classes:
            raise ValueError(f"`classes:` applies to multiclass models only (task is {self.task})")
        return self


class InferenceSettings(_Strict):
    backend: Literal["xgboost", "onnx"] = "xgboost"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_rows: int = Field(default=65_536, gt=0)


class SensorSettings(_Strict):
    """How long to wait for the day's raw partition before failing the run."""

    poke_interval_s: int = Field(default=300, gt=0)
    timeout_s: int = Field(default=6 * 3600, gt=0)
    mode: Literal["poke", "reschedule"] = "reschedule"


class ValidationSettings(_Strict):
    """Which engine runs a gate: GX on pandas over Arrow in the task's memory up to these sizes
    (fast), GX on Spark beyond either of them (scales out). Sizes come from the Parquet footers."""

    pandas_max_rows: int = Field(default=20_000_000, gt=0)
    pandas_max_bytes: int = Field(default=4 * 1024**3, gt=0)
    pandas_workers: int | None = Field(default=None, gt=0)
    """Processes a pandas gate forks for partitions of 200k rows or more (None: the usable CPUs)."""


DriftMethod = Literal["psi", "ks", "wasserstein"]

# Evidently 0.7's defaults: PSI and normed Wasserstein drift at or above the threshold, KS
# drifts when its p-value falls below it.
DEFAULT_DRIFT_THRESHOLDS: dict[str, float] = {"psi": 0.2, "ks": 0.05, "wasserstein": 0.1}


class DriftSettings(_Strict):
    """The drift gate: per-feature method and threshold, prediction drift, segments."""

    method: DriftMethod = "psi"
    methods: dict[str, DriftMethod] = {}
    threshold: float | None = Field(default=None, gt=0)
    thresholds: dict[str, Annotated[float, Field(gt=0)]] = {}
    max_drifted_share: float = Field(default=0.3, gt=0, le=1)
    prediction_gates: bool = True
    segment_column: Identifier | None = None
    min_segment_rows: int = Field(default=500, gt=0)
    trigger_retrain: bool = True
    report_sample_rows: int = Field(default=5_000, gt=0)

    def method_for(self, column: str) -> str:
        return self.methods.get(column, self.method)

    def threshold_for(self, column: str) -> float:
        """A column's own threshold, else the pipeline's (when its method is the default), else
        the method's default."""
        if column in self.thresholds:
            return float(self.thresholds[column])
        method = self.method_for(column)
        if self.threshold is not None and method == self.method:
            return float(self.threshold)
        return DEFAULT_DRIFT_THRESHOLDS[method]


class TrainingSettings(_Strict):
    window_days: int = Field(default=14, gt=0)
    max_rows: int = Field(default=300_000, gt=0)
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    num_boost_round: int = Field(default=200, gt=0)
    params: dict[str, float | int | str] = {
        "max_depth": 6,
        "eta": 0.1,
        "subsample": 0.9,
        "colsample_bytree": 0.9,
        "min_child_weight": 5,
    }
    reference_sample_rows: int = Field(default=20_000, gt=0)
    seed: int = 7
    # A drift-triggered retrain uses labels landed by the drift day + this many days.
    retrain_after_days: int = Field(default=7, ge=0)


class PromotionSettings(_Strict):
    """The promotion gate a retrained challenger must pass to replace the champion."""

    auto: bool = False
    min_auc_gain: float = 0.005
    max_logloss_increase: float = 0.0
    segment_auc_tolerance: float = Field(default=0.02, ge=0)
    max_artifact_bytes: int = Field(default=50_000_000, gt=0)
    min_rows_per_s: float = Field(default=20_000, gt=0)
    min_shadow_rows: int = Field(default=1_000, gt=0)
    # `batchscore models compare`, regression: the challenger's RMSE must be at least this share
    # lower than the champion's (relative: 0.02 = 2 % lower; 0.0 = not worse).
    min_rmse_reduction: float = 0.0
    # `batchscore models compare`, multiclass: the challenger's log loss must be at least this
    # share lower than the champion's (relative; 0.0 = not worse).
    min_logloss_reduction: float = 0.0


class ScheduleSettings(_Strict):
    """Airflow scheduling of the nightly DAG."""

    cron: str = "@daily"
    start_date: date
    catchup: bool = False
    max_active_runs: int = Field(default=1, gt=0)
    retries: int = Field(default=2, ge=0)
    retry_delay_s: int = Field(default=300, ge=0)
    execution_timeout_s: int = Field(default=2 * 3600, gt=0)


class WarehouseSettings(_Strict):
    scores_table: Identifier | None = None


class PipelineSettings(_Strict):
    """One model scoring one entity table, as declared in `pipelines/<name>.yaml`."""

    name: Identifier
    description: str
    owner: str = "ml-platform"
    dataset: DatasetSettings
    features: str = Field(pattern=r"^features\.[a-z][a-z0-9_]*$")
    labels: LabelSettings
    model: ModelSettings
    inference: InferenceSettings = InferenceSettings()
    sensor: SensorSettings = SensorSettings()
    validation: ValidationSettings = ValidationSettings()
    drift: DriftSettings = DriftSettings()
    training: TrainingSettings = TrainingSettings()
    promotion: PromotionSettings = PromotionSettings()
    schedule: ScheduleSettings
    warehouse: WarehouseSettings = WarehouseSettings()
    tags: list[str] = []

    @property
    def dag_id(self) -> str:
        return f"batchscore_{self.name}"

    @property
    def retrain_dag_id(self) -> str:
        return f"batchscore_{self.name}_retrain"

    @property
    def scores_table(self) -> str:
        return self.warehouse.scores_table or f"scores_{self.name}"

    @property
    def shadow_scores_table(self) -> str:
        """Where challenger scores are published: same columns, never the champion's table."""
        return f"shadow_{self.scores_table}"

    @property
    def expectations_dir(self) -> Path:
        return REPO_ROOT / "expectations" / self.name


class PlatformSettings(_Strict):
    """Where the lake, the warehouse and Spark are; set by the environment."""

    home: Path
    lake_url: str
    warehouse_url: str
    spark_master: str
    pipelines_dir: Path
    alert_webhook: str | None = None
    # S3 lake (`s3://bucket/prefix`): a custom endpoint (MinIO, moto), an optional Airflow
    # connection holding the credentials, and the local working copy Spark reads and writes.
    s3_endpoint_url: str | None = None
    s3_conn_id: str | None = None
    lake_cache_dir: Path | None = None
    # Spark standalone / cluster masters (`spark://host:port`): executor size and the code zip.
    spark_executor_memory: str = "1g"
    spark_executor_cores: int = Field(default=1, gt=0)
    spark_py_files: Path | None = None

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
            s3_endpoint_url=env.get(ENV_S3_ENDPOINT_URL) or None,
            s3_conn_id=env.get(ENV_S3_CONN_ID) or None,
            lake_cache_dir=_optional_path(env.get(ENV_LAKE_CACHE_DIR), home),
            spark_executor_memory=env.get(ENV_SPARK_EXECUTOR_MEMORY) or "1g",
            spark_executor_cores=env.get(ENV_SPARK_EXECUTOR_CORES) or 1,  # type: ignore[arg-type]
            spark_py_files=_optional_path(env.get(ENV_SPARK_PY_FILES), home),
        )
    except ValidationError as exc:
        raise ConfigError(f"environment: {_describe(exc)}") from None


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


def load_pipeline(path: str | Path) -> PipelineSettings:
    """Parse and validate one pipeline file; errors name the file, the key and the problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such pipeline file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    try:
        pipeline = PipelineSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None
    if pipeline.name != path.stem:
        raise ConfigError(f"{path}: name: must match the file name ({path.stem!r}), got {pipeline.name!r}")
    return pipeline


def pipeline_files(pipelines_dir: Path) -> list[Path]:
    return sorted(pipelines_dir.glob("*.yaml"))


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
