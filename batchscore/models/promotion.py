"""The one promotion rule: may a challenger replace the champion, and every reason against.

`jobs.compare` applies it to any task, with metrics measured on labelled days; `jobs.retrain`
to a binary challenger on its training holdout, with the evidence only retraining has (data
checks, throughput and artifact budgets, per-segment AUC, labelled shadow scores). Metric
names are those of `batchscore.model_metrics` bundles (`auc`, `logloss`, `rmse`, `accuracy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from batchscore.settings import PromotionSettings

PROMOTE, REJECT = "promote", "reject"
MAX_ACCURACY_DROP = 0.005
"""Multiclass: the accuracy a challenger may lose while its log loss improves."""
NO_CHAMPION = "no champion: the challenger passes on its own"


def promotion_decision(
    task: str,
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    budget: PromotionSettings,
    checks: Mapping[str, bool] | None = None,
    shadow: Mapping[str, Any] | None = None,
) -> tuple[str, list[str]]:
    """Pure: PROMOTE or REJECT, and the reasons: every reason against when rejecting; when
    promoting, none, or a note that there is no champion to beat.

    Budgets apply to what the challenger's metrics hold (`rows_per_s`, `artifact_bytes`,
    `segments`); `checks` are the training data's checks; `shadow` its labelled shadow scores.
    """
    if "error" in challenger:
        return REJECT, [f"challenger v{challenger['version']}: {challenger['error']}"]
    against = [f"data gate failed: {name}" for name, ok in sorted((checks or {}).items()) if not ok]
    against += _budget_reasons(challenger, budget)
    if champion is not None and "error" in champion:
        against.append(f"champion v{champion['version']}: {champion['error']}")
    elif champion is not None:
        against += _metric_reasons(task, challenger, champion, budget)
    against += _shadow_reasons(shadow, budget)
    if against:
        return REJECT, against
    return PROMOTE, [NO_CHAMPION] if champion is None else []


def _budget_reasons(challenger: Mapping[str, Any], budget: PromotionSettings) -> list[str]:
    against = []
    if "rows_per_s" in challenger and challenger["rows_per_s"] < budget.min_rows_per_s:
        against.append(
            f"throughput {challenger['rows_per_s']:,} rows/s < budget {budget.min_rows_per_s:,.0f}"
        )
    if "artifact_bytes" in challenger and challenger["artifact_bytes"] > budget.max_artifact_bytes:
        against.append(f"artifacts {challenger['artifact_bytes']:,} B > budget {budget.max_artifact_bytes:,}")
    return against


def _metric_reasons(
    task: str, challenger: Mapping[str, Any], champion: Mapping[str, Any], budget: PromotionSettings
) -> list[str]:
    if task == "binary":
        return _binary_reasons(challenger, champion, budget)
    against = []
    if task == "regression":
        reduction = _relative_reduction(champion["rmse"], challenger["rmse"])
        if not reduction >= budget.min_rmse_reduction:
            against.append(
                f"RMSE {challenger['rmse']:.4f} vs champion {champion['rmse']:.4f}: reduction "
                f"{reduction:+.2%} < required {budget.min_rmse_reduction:+.2%}"
            )
    elif task == "multiclass":
        reduction = _relative_reduction(champion["logloss"], challenger["logloss"])
        if not reduction >= budget.min_logloss_reduction:
            against.append(
                f"log loss {challenger['logloss']:.4f} vs champion {champion['logloss']:.4f}: reduction "
                f"{reduction:+.2%} < required {budget.min_logloss_reduction:+.2%}"
            )
        if champion["accuracy"] - challenger["accuracy"] > MAX_ACCURACY_DROP:
            against.append(
                f"accuracy {challenger['accuracy']:.4f} vs champion {champion['accuracy']:.4f}: "
                f"down by more than {MAX_ACCURACY_DROP}"
            )
    else:
        raise ValueError(f"unknown task {task!r}")
    return against


def _binary_reasons(
    challenger: Mapping[str, Any], champion: Mapping[str, Any], budget: PromotionSettings
) -> list[str]:
    """AUC gain, log loss, and no segment's AUC down by more than the tolerance."""
    against = []
    gain = challenger["auc"] - champion["auc"]
    if not gain >= budget.min_auc_gain:
        against.append(f"AUC gain {gain:+.4f} < required {budget.min_auc_gain:+.4f}")
    if challenger["logloss"] - champion["logloss"] > budget.max_logloss_increase:
        against.append(f"log loss worse: {challenger['logloss']:.4f} vs {champion['logloss']:.4f}")
    for name, seg in sorted(challenger.get("segments", {}).items()):
        base = champion.get("segments", {}).get(name)
        comparable = base is not None and np.isfinite(seg["auc"]) and np.isfinite(base["auc"])
        if comparable and base["auc"] - seg["auc"] > budget.segment_auc_tolerance:
            against.append(
                f"segment {name}: AUC {seg['auc']:.4f} vs champion {base['auc']:.4f} "
                f"(tolerance {budget.segment_auc_tolerance})"
            )
    return against


def _shadow_reasons(shadow: Mapping[str, Any] | None, budget: PromotionSettings) -> list[str]:
    """Labelled shadow scores veto a challenger that ranked worse, given enough rows."""
    shadow = shadow or {}
    labelled = bool(shadow) and shadow.get("labelled_rows", 0) >= budget.min_shadow_rows
    if labelled and "challenger" in shadow and shadow["challenger"]["auc"] < shadow["champion"]["auc"]:
        return [
            f"shadow scores: AUC {shadow['challenger']['auc']:.4f} < champion's {shadow['champion']['auc']:.4f}"
        ]
    return []


def _relative_reduction(champion: float, challenger: float) -> float:
    if champion == 0:
        return 0.0 if challenger == 0 else float("-inf")
    return (champion - challenger) / champion
