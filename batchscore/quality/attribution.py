"""Attribution drift: how much each feature moved the day's scores, against training.

The score stage records the day's mean |contribution| per feature (all rows, all features,
in the reasons partition's manifest). Here it is compared with the same statistic on the
model's training reference (`batchscore.models.reasons.reference_attribution`: same method,
at most 20,000 rows of `reference.parquet`, 2,000 for TreeSHAP). One `drift_metrics` row per
feature: feature `attribution:<name>`, method `attribution`, statistic = the day's mean
|contribution|, threshold = the reference's; drifted when the day's is outside
[1/RATIO, RATIO] times the reference's. These rows never count in the drift gate (it
counts the features' own drift; `jobs.gate` leaves method `attribution` out).
"""

from __future__ import annotations

from typing import Any

METHOD = "attribution"
PREFIX = "attribution:"
RATIO = 2.0


def is_shifted(today: float, reference: float) -> bool:
    """Outside [reference / RATIO, reference * RATIO] (a feature unused in training that
    contributes today has shifted; one unused on both sides has not)."""
    if reference <= 0:
        return today > 0
    return not (reference / RATIO <= today <= reference * RATIO)


def attribution_rows(today: dict[str, float], reference: dict[str, float]) -> list[dict[str, Any]]:
    """One `drift_metrics` row per feature (segment `all`)."""
    return [
        {
            "segment": "all",
            "feature": PREFIX + name,
            "method": METHOD,
            "statistic": float(value),
            "threshold": float(reference.get(name, 0.0)),
            "drifted": is_shifted(float(value), float(reference.get(name, 0.0))),
        }
        for name, value in sorted(today.items())
    ]
