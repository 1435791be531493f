"""The pipeline file's schema (`pipelines/<name>.yaml`) and its loader."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from batchscore.settings.base import REPO_ROOT, ConfigError, Identifier, _describe, _Strict


class DatasetSettings(_Strict):
    """The raw entity table the pipeline scores, landed daily in the lake."""

    name: Identifier
    entity_key: Identifier
    # Personal data: never shown in clear in logs, errors, validation or drift reports (hashed
    # with the deployment's BATCHSCORE_PII_KEY, or redacted without one).
    pii_columns: list[Identifier] = []

    @model_validator(mode="after")
    def _key_is_not_personal(self) -> DatasetSettings:
        if self.entity_key in self.pii_columns:
            raise ValueError(
                f"the entity key {self.entity_key} cannot be a PII column (scores are keyed by it)"
            )
        return self


class LabelSettings(_Strict):
    """Outcomes that land later than the features, in their own daily partitions."""

    dataset: Identifier
    column: Identifier
    date_column: Identifier = "label_date"
    # `partition`: also run `batchscore_<name>_outcomes` when a label partition is announced as
    # an Airflow asset event (its arrival date as the partition key), writing the realized
    # performance of the days it refers to then; `nightly`: only the nightly `evaluate` does.
    schedule: Literal["nightly", "partition"] = "nightly"


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


class ExplainSettings(_Strict):
    """Reason codes: the top `top_k` feature contributions per scored row, computed in the
    scoring pass with XGBoost's `pred_contribs` and published with the scores' slice.

    `method: approx` is Saabas (path attribution, about 10x the cost of a prediction);
    `exact` is TreeSHAP (hundreds of times it on a CPU: for small days or a GPU).
    Contributions are in margin units (log-odds for binary); multiclass uses the predicted
    class's. ONNX models have none (the score stage refuses).
    """

    top_k: int = Field(gt=0, le=50)
    method: Literal["approx", "exact"] = "approx"


class SensorSettings(_Strict):
    """How long to wait for the day's raw partition before failing the run."""

    poke_interval_s: int = Field(default=300, gt=0)
    timeout_s: int = Field(default=6 * 3600, gt=0)
    mode: Literal["poke", "reschedule"] = "reschedule"


class QuarantineSettings(_Strict):
    """Row quarantine of the raw gate: up to `max_share` of a day's rows may be held aside."""

    max_share: float = Field(ge=0, le=1)


class ValidationSettings(_Strict):
    """Which engine runs a gate: GX on pandas over Arrow in the task's memory up to these sizes
    (fast), GX on Spark beyond either of them (scales out). Sizes come from the Parquet footers."""

    pandas_max_rows: int = Field(default=2_000_000, gt=0)
    pandas_max_bytes: int = Field(default=1024**3, gt=0)
    pandas_workers: int | None = Field(default=None, gt=0)
    """Processes a pandas gate forks for partitions of 200k rows or more (None: the usable CPUs)."""
    quarantine: QuarantineSettings | None = None
    """Rows breaking strict row-level expectations are held aside (None: the whole day fails)."""


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


class PerformanceSettings(_Strict):
    """Realized and estimated performance (`model_performance`): thresholds and label look-back.

    A threshold left unset is not checked. A realized breach of the champion alerts, is
    recorded in `model_events` and, with `trigger_retrain`, triggers the retrain DAG; an
    estimated breach (before labels land) alerts only.
    """

    min_roc_auc: float | None = Field(default=None, ge=0, le=1)
    max_log_loss: float | None = Field(default=None, gt=0)
    max_brier: float | None = Field(default=None, gt=0)
    max_rmse: float | None = Field(default=None, gt=0)
    min_macro_f1: float | None = Field(default=None, ge=0, le=1)
    # Decisions (accuracy, estimated accuracy, decision flips) are score >= this threshold.
    decision_threshold: float = Field(default=0.5, gt=0, lt=1)
    # Label partitions landed with dt in (run date - lookback_days, run date] are evaluated.
    lookback_days: int = Field(default=7, gt=0)
    trigger_retrain: bool = False
    bootstrap_draws: int = Field(default=200, gt=0)


class StabilitySettings(_Strict):
    """Day-over-day score stability (`score_stability`); an unset threshold is not checked."""

    max_score_psi: float | None = Field(default=None, gt=0)
    min_rank_correlation: float | None = Field(default=None, ge=-1, le=1)
    max_decision_flip_share: float | None = Field(default=None, ge=0, le=1)


def due_at(day: date, publish_by_minutes: int | None, timezone: str) -> datetime | None:
    """When `day`'s scores are due: `publish_by_minutes` after local midnight of that day in
    `timezone`, as a time in that zone; None for a pipeline without a deadline.

    The one deadline rule: Airflow's deadline alert, the health page and the alert on a
    missed deadline all call it; `pipeline_freshness` (warehouse/freshness.py) states the same
    rule in SQL for the day after the last published one.
    """
    if publish_by_minutes is None:
        return None
    midnight = datetime.combine(day, time(), ZoneInfo(timezone))
    return midnight + timedelta(minutes=publish_by_minutes)


class ScheduleSettings(_Strict):
    """Airflow scheduling of the nightly DAG."""

    cron: str = "@daily"
    # `partition`: run when the day's raw partition is announced as an Airflow asset event
    # (with its date as the partition key) instead of on `cron`; see orchestration/assets.py.
    on: Literal["cron", "partition"] = "cron"
    start_date: date
    catchup: bool = False
    max_active_runs: int = Field(default=1, gt=0)
    retries: int = Field(default=2, ge=0)
    retry_delay_s: int = Field(default=300, ge=0)
    execution_timeout_s: int = Field(default=2 * 3600, gt=0)
    # The day's scores are due by this local time ("HH:MM", in `timezone`) on the run's day:
    # later, `pipeline_freshness` shows the pipeline late and Airflow raises a deadline alert.
    publish_by: str | None = Field(default=None, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        return value

    @property
    def publish_by_minutes(self) -> int | None:
        """`publish_by` as minutes after local midnight, or None without a deadline."""
        if self.publish_by is None:
            return None
        hours, minutes = self.publish_by.split(":")
        return int(hours) * 60 + int(minutes)

    def due_at(self, day: date) -> datetime | None:
        """When `day`'s scores are due (in `timezone`); None without `publish_by`."""
        return due_at(day, self.publish_by_minutes, self.timezone)


class HealthSettings(_Strict):
    """The model-health page (`jobs.health`): how many days up to the run's day it covers."""

    window_days: int = Field(default=30, gt=0, le=366)


class WarehouseSettings(_Strict):
    scores_table: Identifier | None = None


# What a published scores row already holds: a context column may not take one of these names.
PUBLISHED_COLUMNS = frozenset(
    {"score", "run_date", "pipeline", "model_name", "model_version", "run_id", "predicted_class"}
)


class OutputSettings(_Strict):
    """What the warehouse publishes beside the scores: input columns analysts need with them."""

    # Raw input columns (from the day's raw partition, joined by entity key) published beside
    # each score, in this order; a change of the list is the next version of the output contract.
    context_columns: list[Identifier] = []

    @field_validator("context_columns")
    @classmethod
    def _plain_and_unique(cls, value: list[str]) -> list[str]:
        taken = sorted(set(value) & PUBLISHED_COLUMNS) + [c for c in value if c.startswith("p_")]
        if taken:
            raise ValueError(f"{', '.join(taken)}: already a published column name")
        if len(set(value)) != len(value):
            raise ValueError(f"columns repeat: {value}")
        return value


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
    performance: PerformanceSettings = PerformanceSettings()
    stability: StabilitySettings = StabilitySettings()
    schedule: ScheduleSettings
    warehouse: WarehouseSettings = WarehouseSettings()
    output: OutputSettings = OutputSettings()
    health: HealthSettings = HealthSettings()
    explain: ExplainSettings | None = None
    tags: list[str] = []

    def context_problem(self) -> str | None:
        """Why `output.context_columns` cannot be published as configured, or None."""
        context = self.output.context_columns
        if self.dataset.entity_key in context:
            return f"output.context_columns: {self.dataset.entity_key} is the entity key, published already"
        personal = [c for c in context if c in self.dataset.pii_columns]
        if personal:
            return (
                f"output.context_columns: {', '.join(personal)} listed in dataset.pii_columns; "
                "personal data is never published as context"
            )
        return None

    @property
    def dag_id(self) -> str:
        return f"batchscore_{self.name}"

    @property
    def retrain_dag_id(self) -> str:
        return f"batchscore_{self.name}_retrain"

    @property
    def outcomes_dag_id(self) -> str:
        """The DAG run on label partitions (`labels.schedule: partition`)."""
        return f"batchscore_{self.name}_outcomes"

    @property
    def scores_table(self) -> str:
        return self.warehouse.scores_table or f"scores_{self.name}"

    @property
    def shadow_scores_table(self) -> str:
        """Where challenger scores are published: same columns, never the champion's table."""
        return f"shadow_{self.scores_table}"

    @property
    def quarantine_table(self) -> str:
        """Where the raw rows held aside by the quarantine are published, with the day's scores."""
        return f"quarantine_{self.name}"

    @property
    def reasons_table(self) -> str:
        """Where the champion's reason codes are published (`explain:`), next to its scores."""
        return f"score_reasons_{self.name}"

    @property
    def expectations_dir(self) -> Path:
        return REPO_ROOT / "expectations" / self.name


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
    problem = pipeline.context_problem()
    if problem:
        raise ConfigError(f"{path}: {problem}")
    if pipeline.name != path.stem:
        raise ConfigError(f"{path}: name: must match the file name ({path.stem!r}), got {pipeline.name!r}")
    return pipeline


def pipeline_files(pipelines_dir: Path) -> list[Path]:
    return sorted(pipelines_dir.glob("*.yaml"))
