"""A constructed month of model health (binary churn model) for the page's renderer tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from batchscore.quality.health_data import (
    DriftRow,
    HealthData,
    MetricPoint,
    ReasonShare,
    RunSummary,
    StabilityPoint,
)

DAY = date(2026, 11, 21)
FIRST = DAY - timedelta(days=29)
HOSTILE = "<img src=x onerror=alert(1)>"
"""A feature name that would run script if the page did not escape it."""


def point(
    day: date, kind: str, metric: str, value: float, band: float | None = None, role: str = "champion"
) -> MetricPoint:
    lower, upper = (value - band, value + band) if band is not None else (None, None)
    return MetricPoint(day, 1, role, kind, metric, value, lower, upper, 3000 if kind == "estimated" else 1200)


def month_of_health(**changes: object) -> HealthData:
    """Labels for the first 20 days, estimates for every day from the 5th, shadow realized on
    the last 3 labeled days, calibration on the last labeled day, stability from day 2."""
    performance: list[MetricPoint] = []
    for i in range(30):
        day = FIRST + timedelta(days=i)
        if i < 20:
            performance += [
                point(day, "realized", "roc_auc", 0.80 + i * 0.002),
                point(day, "realized", "log_loss", 0.40 - i * 0.001),
            ]
        if i >= 4:
            performance += [
                point(day, "estimated", "roc_auc", 0.82, band=0.02),
                point(day, "estimated", "log_loss", 0.39, band=0.03),
            ]
        if 17 <= i < 20:
            performance.append(point(day, "realized", "roc_auc", 0.83, role="shadow"))
    last_labeled = FIRST + timedelta(days=19)
    performance += [point(last_labeled, "realized", f"calibration_d{d:02d}", d / 11) for d in range(1, 11)]
    stability = [
        StabilityPoint(
            FIRST + timedelta(days=i),
            1,
            FIRST + timedelta(days=i - 1),
            1,
            0.01 * i,
            0.99 - 0.001 * i,
            0.5,
            0.002 * i,
            2900,
            100,
            95,
        )
        for i in range(1, 30)
    ]
    drift = [
        DriftRow("monthly_charges", "psi", 0.30, 0.15, True),
        DriftRow(HOSTILE, "psi", 0.35, 0.2, True),
        DriftRow("tenure_months", "psi", 0.05, 0.2, False),
    ]
    values: dict[str, object] = {
        "pipeline": "churn",
        "day": DAY,
        "window_days": 30,
        "task": "binary",
        "model_name": "churn_xgb",
        "model_version": 1,
        "published_rows": 3000,
        "published_at": datetime(2026, 11, 21, 4, 30, tzinfo=UTC),
        "due_at": datetime(2026, 11, 21, 5, 0, tzinfo=UTC),
        "last_run": RunSummary(
            "manual__2026-11-21", "published", 42.5, 7000.0, datetime(2026, 11, 21, 4, 30, tzinfo=UTC)
        ),
        "performance": performance,
        "stability": stability,
        "drift": drift,
        "score_drift": DriftRow("score", "psi", 0.04, 0.2, False),
        "reasons_enabled": True,
        "reasons": [
            ReasonShare("monthly_charges", 1800, 0.6),
            ReasonShare(HOSTILE, 900, 0.3),
            ReasonShare("tenure_months", 300, 0.1),
        ],
    }
    values.update(changes)
    return HealthData(**values)  # type: ignore[arg-type]


def nothing_yet(**changes: object) -> HealthData:
    """A pipeline's first day: nothing published, no outcome, no drift, no reason codes."""
    values: dict[str, object] = {
        "pipeline": "churn",
        "day": DAY,
        "window_days": 30,
        "task": "binary",
        "model_name": "churn_xgb",
        "model_version": None,
    }
    values.update(changes)
    return HealthData(**values)  # type: ignore[arg-type]
