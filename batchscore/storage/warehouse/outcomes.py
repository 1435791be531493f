"""The outcome tables: how good the scores were and how much they moved.

Migration 5 creates them, long and shared by every pipeline (each pipeline reads its own
through the `model_performance_<pipeline>` and `score_stability_<pipeline>` views):

- `model_performance`: one row per metric of one day's scores of one model version, `kind`
  `realized` (labels joined to the published scores once they land; `row_count` = labeled
  rows) or `estimated` (confidence-based estimate before labels land; `row_count` = scored
  rows, `lower`/`upper` its band), `role` `champion` or `shadow`, `segment` `all` or
  `<column>=<value>`. Metric names: `roc_auc`, `log_loss`, `brier`, `accuracy`,
  `calibration_d01`..`calibration_d10` (observed positive rate in each score decile),
  `rmse`, `mae`, `macro_f1`.
- `score_stability`: one row per published day, compared with the previous published day
  of the same pipeline.
"""

from __future__ import annotations

OUTCOMES_MIGRATION: tuple[int, str, list[str]] = (
    5,
    "model performance (realized and estimated) and score stability",
    [
        """CREATE TABLE model_performance (
            pipeline VARCHAR NOT NULL, run_date DATE NOT NULL, model_name VARCHAR NOT NULL,
            model_version INTEGER NOT NULL, role VARCHAR NOT NULL, kind VARCHAR NOT NULL,
            segment VARCHAR NOT NULL, metric VARCHAR NOT NULL, value DOUBLE PRECISION,
            lower DOUBLE PRECISION, upper DOUBLE PRECISION, row_count BIGINT NOT NULL,
            run_id VARCHAR NOT NULL, recorded_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (pipeline, run_date, model_version, role, kind, segment, metric))""",
        """CREATE TABLE score_stability (
            pipeline VARCHAR NOT NULL, run_date DATE NOT NULL, model_version INTEGER NOT NULL,
            previous_run_date DATE NOT NULL, previous_model_version INTEGER NOT NULL,
            score_psi DOUBLE PRECISION, rank_correlation DOUBLE PRECISION,
            decision_threshold DOUBLE PRECISION, decision_flip_share DOUBLE PRECISION,
            shared_entities BIGINT NOT NULL, new_entities BIGINT NOT NULL,
            gone_entities BIGINT NOT NULL, run_id VARCHAR NOT NULL,
            recorded_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (pipeline, run_date))""",
    ],
)
