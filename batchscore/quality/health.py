"""The model-health page of one pipeline and day: one offline HTML file.

Rendered from a `HealthData` (see `health_data.load_health`) with the validation report's
style and Content-Security-Policy: inline CSS and inline SVG charts, no script, no external
asset, every value from the warehouse escaped. Sections: the day's header (model version,
published rows, freshness), performance over time (realized, estimated with its band),
estimated vs realized, calibration by decile, score stability, the day's most drifted features
and the share of rows each feature is the first reason code of. An empty section says why.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from batchscore.quality.health_charts import Series, bar_chart, column_chart, line_chart, number
from batchscore.quality.health_data import HealthData, MetricPoint, StabilityPoint, reasons_view
from batchscore.quality.report import OFFLINE_POLICY, STYLE
from batchscore.storage.lake import write_bytes_atomic

e = html.escape

CHART_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "log_loss"),
    "regression": ("rmse", "mae"),
    "multiclass": ("log_loss", "macro_f1"),
}
TABLE_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "log_loss", "brier", "accuracy"),
    "regression": ("rmse", "mae"),
    "multiclass": ("log_loss", "macro_f1", "accuracy"),
}
LABELS = {
    "roc_auc": "ROC AUC",
    "log_loss": "log loss",
    "brier": "Brier score",
    "accuracy": "accuracy",
    "rmse": "RMSE",
    "mae": "MAE",
    "macro_f1": "macro F1",
}
DECILES = tuple(f"calibration_d{i:02d}" for i in range(1, 11))
TOP_FEATURES = 15
COMPARED_DAYS = 10
STABILITY_DAYS = 7

HEALTH_STYLE = """
figure.plot{display:inline-block;margin:4px 12px 8px 0;vertical-align:top}
figure.plot figcaption{font-weight:600;font-size:13px;margin-bottom:2px}
.chart{display:block;background:#fff;border:1px solid #e3e6ea;border-radius:4px}
.chart .tick{font:11px system-ui,sans-serif;fill:#566070} .chart .grid{stroke:#eef0f3} .chart .axis{stroke:#9aa3ae}
.chart .line{fill:none;stroke-width:2} .chart .dashed{stroke-dasharray:5 4} .chart .band{stroke:none;opacity:.18}
.chart .limit{stroke:#c62828;stroke-dasharray:4 3}
.s-realized{stroke:#1f5fbf;fill:#1f5fbf} .s-estimated{stroke:#b26a00;fill:#b26a00}
.s-shadow{stroke:#6a3fb5;fill:#6a3fb5} .s-ok{fill:#1f8a4c} .s-bad{fill:#c62828}
p.empty{color:#566070;background:#f5f7f9;padding:8px 12px;border-left:3px solid #9aa3ae}
td.num{text-align:right;font-variant-numeric:tabular-nums} table.compact{width:auto}
"""


def render_health_html(data: HealthData) -> str:
    """The whole page: a pure function of `data` (no clock, no I/O)."""
    title = f"{data.pipeline} · model health · {data.day.isoformat()}"
    sections = [
        performance_section(data),
        estimated_vs_realized_section(data),
        calibration_section(data),
        stability_section(data),
        drift_section(data),
        reasons_section(data),
    ]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{OFFLINE_POLICY}"><title>{e(title)}</title>
<style>{STYLE}{HEALTH_STYLE}</style></head><body>
<h1>{e(title)}</h1>
{header(data)}
{"".join(sections)}
</body></html>
"""


def write_health_page(data: HealthData, folder: Path) -> Path:
    """Write `health.html` into `folder` atomically (readers never see half a page)."""
    path = folder / "health.html"
    write_bytes_atomic(path, render_health_html(data).encode("utf-8"))
    return path


def empty(message: str) -> str:
    return f"<p class='empty'>{e(message)}</p>"


def table(table_id: str, head: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    """A table with escaped headings over rows of cells made by `cell`."""
    heads = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(cells) + "</tr>" for cells in rows)
    return (
        f"<table id='{table_id}' class='{css}'><thead><tr>{heads}</tr></thead><tbody>{body}</tbody></table>"
    )


def cell(value: object, numeric: bool = False) -> str:
    return f"<td class='num'>{e(str(value))}</td>" if numeric else f"<td>{e(str(value))}</td>"


def header(data: HealthData) -> str:
    """Model version, published rows, freshness and the day's last run."""
    version = (
        f"{data.model_name} v{data.model_version}"
        if data.model_version
        else f"{data.model_name} (no version)"
    )
    if data.published_at is None:
        published = "nothing published for this day"
        freshness = ""
    else:
        at = data.published_at.astimezone(data.due_at.tzinfo) if data.due_at else data.published_at
        published = f"{data.published_rows:,} rows published at {at.isoformat(timespec='seconds')}"
        freshness = "no deadline (schedule.publish_by unset)"
        if data.due_at is not None:
            late = data.published_at > data.due_at
            badge = (
                "<span class='badge warn'>late</span>" if late else "<span class='badge ok'>on time</span>"
            )
            freshness = f"due by {e(data.due_at.isoformat(timespec='seconds'))} {badge}"
    run = data.last_run
    last = (
        "no run recorded for this day"
        if run is None
        else f"{run.status} (run {run.run_id}, {number(run.seconds)} s, recorded {run.recorded_at.isoformat(timespec='seconds')})"
    )
    lines = [
        f"model <code>{e(version)}</code> ({e(data.task)})",
        f"published: {e(published)} {freshness}".rstrip(),
        f"last run: {e(last)}",
        f"window: {data.first_day.isoformat()} to {data.day.isoformat()} ({data.window_days} days)",
    ]
    return f"<div class='meta' id='header'>{'<br>'.join(lines)}</div>"


def champion(points: Sequence[MetricPoint], kind: str, metric: str) -> list[MetricPoint]:
    return [p for p in points if p.role == "champion" and p.kind == kind and p.metric == metric]


def performance_section(data: HealthData) -> str:
    """One chart per headline metric of the task: realized, estimated (with band), shadow realized."""
    out = ["<h2>Performance over time</h2><div id='performance'>"]
    points = [p for p in data.performance if p.value is not None]
    if not points:
        message = f"no labels landed yet for any scored day and no estimate recorded from {data.first_day} to {data.day}"
        out.append(empty(message))
        return "".join(out) + "</div>"
    if not any(p.kind == "realized" for p in points):
        out.append(empty("no labels landed yet for any scored day: only estimated performance so far"))
    metrics = CHART_METRICS.get(data.task, ())
    if not any(p.metric in metrics for p in points):
        names = " or ".join(LABELS.get(m, m) for m in metrics)
        out.append(empty(f"no {names} recorded from {data.first_day} to {data.day}"))
    for metric in metrics:
        realized = champion(points, "realized", metric)
        estimated = champion(points, "estimated", metric)
        shadow = [p for p in points if p.role == "shadow" and p.kind == "realized" and p.metric == metric]
        if not (realized or estimated or shadow):
            continue
        series = [
            Series("realized", "s-realized", [(p.run_date, float(p.value or 0)) for p in realized]),
            Series(
                "estimated",
                "s-estimated",
                [(p.run_date, float(p.value or 0)) for p in estimated],
                band=[
                    (p.run_date, p.lower, p.upper)
                    for p in estimated
                    if p.lower is not None and p.upper is not None
                ],
                dashed=True,
            ),
        ]
        if shadow:
            series.append(
                Series("shadow realized", "s-shadow", [(p.run_date, float(p.value or 0)) for p in shadow])
            )
        label = LABELS.get(metric, metric)
        out.append(line_chart(f"chart-{metric}", f"{label} per day", series, data.first_day, data.day))
    return "".join(out) + "</div>"


def estimated_vs_realized_section(data: HealthData) -> str:
    """Days with both an estimate and realized labels: how close the estimate came."""
    rows = []
    for metric in TABLE_METRICS.get(data.task, ()):
        estimates = {p.run_date: p for p in champion(data.performance, "estimated", metric)}
        for real in champion(data.performance, "realized", metric):
            guess = estimates.get(real.run_date)
            if guess is None or guess.value is None or real.value is None:
                continue
            band = inside = "n/a"
            if guess.lower is not None and guess.upper is not None:
                band = f"{guess.lower:.4g} to {guess.upper:.4g}"
                inside = "yes" if guess.lower <= real.value <= guess.upper else "no"
            rows.append(
                (
                    real.run_date,
                    [
                        cell(real.run_date.isoformat()),
                        cell(LABELS.get(metric, metric)),
                        cell(number(guess.value), True),
                        cell(band),
                        cell(number(real.value), True),
                        cell(f"{round(real.value - guess.value, 9):+.4g}", True),
                        cell(inside),
                        cell(f"{real.row_count:,}", True),
                    ],
                )
            )
    out = "<h2>Estimated vs realized</h2><div id='estimated-vs-realized'>"
    if not rows:
        return out + empty("no day in the window has both an estimate and realized labels yet") + "</div>"
    days = sorted({day for day, _ in rows}, reverse=True)[:COMPARED_DAYS]
    shown = [cells for day, cells in sorted(rows, key=lambda r: r[0], reverse=True) if day in days]
    caption = f"<p>the latest {len(days)} of {len({day for day, _ in rows})} days with both</p>"
    head = [
        "day",
        "metric",
        "estimated",
        "band",
        "realized",
        "realized - estimated",
        "in band",
        "labeled rows",
    ]
    return out + caption + table("estimated-realized", head, shown) + "</div>"


def calibration_section(data: HealthData) -> str:
    """Observed positive rate per score decile, on the latest day with realized labels."""
    out = "<h2>Calibration by decile</h2><div id='calibration'>"
    if data.task != "binary":
        return (
            out
            + empty(f"calibration by decile applies to binary models (this one is {data.task})")
            + "</div>"
        )
    deciles = [
        p for p in data.performance if p.role == "champion" and p.kind == "realized" and p.metric in DECILES
    ]
    if not deciles:
        return out + empty("no realized calibration yet: no labels landed for any scored day") + "</div>"
    day = max(p.run_date for p in deciles)
    by_metric = {p.metric: p for p in deciles if p.run_date == day}
    rows = max(p.row_count for p in by_metric.values())
    columns = [(f"d{i + 1}", by_metric[m].value if m in by_metric else None) for i, m in enumerate(DECILES)]
    chart = column_chart("chart-calibration", f"observed positive rate per score decile on {day}", columns)
    return out + f"<p>{day.isoformat()}: {rows:,} labeled rows, deciles of the score</p>{chart}</div>"


def stability_section(data: HealthData) -> str:
    """Score PSI, rank correlation and decision flips against the previous published day."""
    out = ["<h2>Score stability</h2><div id='stability'>"]
    if not data.stability:
        message = (
            "no score stability recorded in the window: each published day is compared with the previous one"
        )
        return out[0] + empty(message) + "</div>"
    metrics: list[tuple[str, str, tuple[float, float] | None]] = [
        ("score_psi", "score PSI vs the previous day", None),
        ("rank_correlation", "rank correlation vs the previous day", None),
        ("decision_flip_share", "share of decisions flipped", None),
    ]
    for attribute, label, fixed in metrics:
        points = [
            (s.run_date, getattr(s, attribute)) for s in data.stability if getattr(s, attribute) is not None
        ]
        series = [Series(label, "s-realized", [(d, float(v)) for d, v in points])]
        out.append(line_chart(f"chart-{attribute}", label, series, data.first_day, data.day, fixed))
    out.append(stability_table(data.stability))
    return "".join(out) + "</div>"


def stability_table(points: Sequence[StabilityPoint]) -> str:
    rows = [
        [
            cell(s.run_date.isoformat()),
            cell(f"v{s.model_version}"),
            cell(f"{s.previous_run_date.isoformat()} v{s.previous_model_version}"),
            cell(number(s.score_psi), True),
            cell(number(s.rank_correlation), True),
            cell(number(s.decision_flip_share), True),
            cell(number(s.decision_threshold), True),
            cell(f"{s.shared_entities:,}", True),
            cell(f"{s.new_entities:,}", True),
            cell(f"{s.gone_entities:,}", True),
        ]
        for s in sorted(points, key=lambda s: s.run_date, reverse=True)[:STABILITY_DAYS]
    ]
    head = [
        "day",
        "model",
        "compared with",
        "score PSI",
        "rank corr.",
        "flip share",
        "threshold",
        "shared",
        "new",
        "gone",
    ]
    return table("stability-table", head, rows)


def drift_section(data: HealthData) -> str:
    """The day's features by drift relative to their threshold, most drifted first."""
    out = "<h2>Top drifted features</h2><div id='drift'>"
    if not data.drift:
        which = f"model v{data.model_version}" if data.model_version else "any model version"
        return (
            out
            + empty(f"no drift metrics for {data.day} ({which}): the drift report has not run for this day")
            + "</div>"
        )
    drifted = sum(row.drifted for row in data.drift)
    top = data.drift[:TOP_FEATURES]
    summary = f"{drifted} of {len(data.drift)} features drifted on {data.day.isoformat()}"
    if data.score_drift is not None:
        s = data.score_drift
        summary += f"; the score: {s.method} {number(s.statistic)} (threshold {number(s.threshold)})"
        summary += ", drifted" if s.drifted else ", not drifted"
    bars = [(row.feature, row.ratio, "s-bad" if row.drifted else "s-ok") for row in top]
    chart = bar_chart("chart-drift", "statistic / threshold per feature", bars, limit=1.0)
    rows = [
        [
            cell(row.feature),
            cell(row.method),
            cell(number(row.statistic), True),
            cell(number(row.threshold), True),
            cell(f"{row.ratio:.3g}", True),
            cell("yes" if row.drifted else "no"),
        ]
        for row in top
    ]
    head = ["feature", "method", "statistic", "threshold", "statistic / threshold", "drifted"]
    return out + f"<p>{e(summary)}</p>{chart}{table('drift-table', head, rows, 'compact')}</div>"


def reasons_section(data: HealthData) -> str:
    """The share of the day's rows whose first reason code is each feature."""
    out = "<h2>Reason-code shares</h2><div id='reasons'>"
    if not data.reasons_enabled:
        view = reasons_view(data.pipeline)
        return out + empty(f"reason codes not enabled: the warehouse has no {view} view") + "</div>"
    if not data.reasons:
        which = f"model v{data.model_version}" if data.model_version else "no model version"
        return out + empty(f"no reason codes for {data.day} ({which})") + "</div>"
    total = sum(r.rows for r in data.reasons)
    top = data.reasons[:TOP_FEATURES]
    chart = bar_chart(
        "chart-reasons",
        "share of rows with the feature as first reason",
        [(r.feature, r.share, "s-realized") for r in top],
        None,
    )
    rows = [[cell(r.feature), cell(f"{r.rows:,}", True), cell(f"{r.share:.1%}", True)] for r in top]
    caption = f"<p>first reason code of {total:,} rows on {data.day.isoformat()}</p>"
    return (
        out
        + caption
        + chart
        + table("reasons-table", ["feature", "rows", "share"], rows, "compact")
        + "</div>"
    )
