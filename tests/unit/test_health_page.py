"""The model-health page renders every section from a constructed HealthData: values where they
belong, empty sections that say why, every warehouse string escaped, nothing fetched."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from batchscore.quality.health import render_health_html, write_health_page
from batchscore.quality.health_charts import Series, line_chart
from batchscore.quality.health_data import MetricPoint, due_at
from batchscore.quality.report import OFFLINE_POLICY
from tests.unit.health_example import DAY, FIRST, HOSTILE, month_of_health, nothing_yet, point


def section(page: str, section_id: str) -> str:
    match = re.search(rf"<div[^>]* id='{section_id}'>(.*?)</div>", page, re.S)
    assert match, f"no section {section_id}"
    return match.group(1)


def table_rows(page: str, table_id: str) -> list[list[str]]:
    body = re.search(rf"<table id='{table_id}'.*?<tbody>(.*?)</tbody>", page, re.S)
    assert body, f"no table {table_id}"
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body.group(1))]


def test_a_month_of_health_draws_every_chart_offline():
    page = render_health_html(month_of_health())
    assert f'content="{OFFLINE_POLICY}"' in page
    assert not re.search(r"<[^>]*\b(src|href)\s*=|url\(|@import|<script|<link|https?:", page, re.I)
    charts = re.findall(r"<svg id='([^']+)'", page)
    assert charts == [
        "chart-roc_auc",
        "chart-log_loss",
        "chart-calibration",
        "chart-score_psi",
        "chart-rank_correlation",
        "chart-decision_flip_share",
        "chart-drift",
        "chart-reasons",
    ]
    auc = re.search(r"<svg id='chart-roc_auc'.*?</svg>", page, re.S).group(0)  # type: ignore[union-attr]
    assert len(re.findall(r"<circle class='dot s-realized'", auc)) == 20
    assert len(re.findall(r"<circle class='dot s-estimated'", auc)) == 26
    assert len(re.findall(r"<circle class='dot s-shadow'", auc)) == 3
    assert auc.count("<polygon class='band s-estimated'") == 1
    assert "class='empty'" not in page


def test_the_header_says_version_rows_and_freshness():
    header = section(render_health_html(month_of_health()), "header")
    assert "churn_xgb v1" in header and "(binary)" in header
    assert "3,000 rows published at 2026-11-21T04:30:00+00:00" in header
    assert "<span class='badge ok'>on time</span>" in header
    assert "published (run manual__2026-11-21, 42.5 s" in header
    assert "window: 2026-10-23 to 2026-11-21 (30 days)" in header
    late = section(
        render_health_html(month_of_health(published_at=datetime(2026, 11, 21, 9, 0, tzinfo=UTC))), "header"
    )
    assert "<span class='badge warn'>late</span>" in late
    berlin = datetime(2026, 11, 21, 6, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    local = section(render_health_html(month_of_health(due_at=berlin)), "header")
    assert "published at 2026-11-21T05:30:00+01:00 due by 2026-11-21T06:00:00+01:00" in local, "one time zone"
    no_deadline = section(render_health_html(month_of_health(due_at=None)), "header")
    assert "no deadline (schedule.publish_by unset)" in no_deadline


def test_estimated_vs_realized_lists_the_days_with_both_newest_first():
    rows = table_rows(render_health_html(month_of_health()), "estimated-realized")
    # days 5..20 have both, for ROC AUC and log loss: the latest 10 of them are shown
    assert len(rows) == 2 * 10
    assert "the latest 10 of 16 days with both" in section(
        render_health_html(month_of_health()), "estimated-vs-realized"
    )
    newest = FIRST + timedelta(days=19)
    auc = next(r for r in rows if r[1] == "ROC AUC")
    assert auc[0] == newest.isoformat()
    assert auc[2:] == ["0.82", "0.8 to 0.84", "0.838", "+0.018", "yes", "1,200"]
    oldest = next(r for r in rows if r[1] == "ROC AUC" and r[0] == (FIRST + timedelta(days=10)).isoformat())
    assert oldest[4:7] == ["0.82", "+0", "yes"], "no float noise in the difference"
    assert rows[-1][0] == oldest[0]
    loss = next(r for r in rows if r[1] == "log loss" and r[0] == newest.isoformat())
    assert loss[4:7] == ["0.381", "-0.009", "yes"]


def test_a_realized_value_outside_the_band_says_so():
    day = DAY - timedelta(days=1)
    data = month_of_health(
        performance=[
            point(day, "estimated", "roc_auc", 0.80, band=0.01),
            point(day, "realized", "roc_auc", 0.70),
        ]
    )
    rows = table_rows(render_health_html(data), "estimated-realized")
    assert rows == [[day.isoformat(), "ROC AUC", "0.8", "0.79 to 0.81", "0.7", "-0.1", "no", "1,200"]]


def test_calibration_uses_the_latest_labeled_day():
    page = render_health_html(month_of_health())
    calibration = section(page, "calibration")
    assert f"{(FIRST + timedelta(days=19)).isoformat()}: 1,200 labeled rows" in calibration
    bars = re.findall(r"<rect class='bar s-realized'[^>]*><title>(d\d+): ([0-9.]+)</title>", calibration)
    assert [b[0] for b in bars] == [f"d{i}" for i in range(1, 11)]
    assert float(bars[-1][1]) == round(10 / 11, 4)


def test_drift_and_reasons_escape_feature_names_and_keep_the_order_given():
    page = render_health_html(month_of_health())
    assert HOSTILE not in page and "<img" not in page
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    drift = section(page, "drift")
    assert "2 of 3 features drifted on 2026-11-21; the score: psi 0.04 (threshold 0.2), not drifted" in drift
    rows = table_rows(page, "drift-table")
    assert [r[0] for r in rows] == ["monthly_charges", escaped, "tenure_months"]
    assert rows[0][4:] == ["2", "yes"] and rows[2][4:] == ["0.25", "no"]
    assert drift.count("class='bar s-bad'") == 2 and drift.count("class='bar s-ok'") == 1
    reasons = table_rows(page, "reasons-table")
    assert reasons == [
        ["monthly_charges", "1,800", "60.0%"],
        [escaped, "900", "30.0%"],
        ["tenure_months", "300", "10.0%"],
    ]
    assert "first reason code of 3,000 rows on 2026-11-21" in section(page, "reasons")


def test_a_first_day_says_why_each_section_is_empty():
    page = render_health_html(nothing_yet())
    messages = re.findall(r"<p class='empty'>(.*?)</p>", page)
    assert messages == [
        "no labels landed yet for any scored day and no estimate recorded from 2026-10-23 to 2026-11-21",
        "no day in the window has both an estimate and realized labels yet",
        "no realized calibration yet: no labels landed for any scored day",
        "no score stability recorded in the window: each published day is compared with the previous one",
        "no drift metrics for 2026-11-21 (any model version): the drift report has not run for this day",
        "reason codes not enabled: the warehouse has no score_reasons_churn view",
    ]
    header = section(page, "header")
    assert "nothing published for this day" in header and "no run recorded for this day" in header
    assert "<svg" not in page


def test_estimates_before_any_label_say_no_labels_landed():
    estimates = [point(DAY - timedelta(days=i), "estimated", "roc_auc", 0.8, band=0.02) for i in range(3)]
    page = render_health_html(nothing_yet(model_version=1, performance=estimates, reasons_enabled=True))
    performance = section(page, "performance")
    assert "no labels landed yet for any scored day: only estimated performance so far" in performance
    assert "<svg id='chart-roc_auc'" in performance and "chart-log_loss" not in performance
    assert "no reason codes for 2026-11-21 (model v1)" in section(page, "reasons")


def test_a_regression_model_charts_its_own_metrics():
    metrics = [
        MetricPoint(DAY - timedelta(days=i), 1, "champion", "realized", metric, value, None, None, 500)
        for i in range(5)
        for metric, value in (("rmse", 3.2 + i), ("mae", 2.1 + i))
    ]
    page = render_health_html(nothing_yet(task="regression", model_version=1, performance=metrics))
    assert re.findall(r"<svg id='(chart-[a-z_]+)'", page) == ["chart-rmse", "chart-mae"]
    assert "calibration by decile applies to binary models (this one is regression)" in page
    assert "estimated-realized" not in page, "no estimates: nothing to compare"


def test_a_line_chart_puts_values_where_they_belong():
    first, last = date(2026, 11, 1), date(2026, 11, 5)
    chart = line_chart(
        "c", "t", [Series("s", "s-realized", [(first, 0.0), (last, 1.0)])], first, last, (0.0, 1.0)
    )
    # plot area x 58..546, y 30 (value 1) .. 186 (value 0)
    assert "d='M58.0,186.0 L546.0,30.0'" in chart
    assert "<title>s 2026-11-05: 1</title>" in chart


def test_the_deadline_is_publish_by_local_time_on_the_day():
    due = due_at(DAY, 6 * 60, "Europe/Berlin")
    assert due is not None and due.astimezone(UTC) == datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
    assert due_at(DAY, None, "UTC") is None


def test_the_page_is_written_whole(tmp_path):
    data = month_of_health()
    path = write_health_page(data, tmp_path / "dt=2026-11-21")
    assert path == tmp_path / "dt=2026-11-21" / "health.html"
    assert path.read_text(encoding="utf-8") == render_health_html(data)
    assert [p.name for p in path.parent.iterdir()] == ["health.html"], "no temporary file left behind"


def test_stability_charts_the_window_and_tables_the_latest_week():
    page = render_health_html(month_of_health())
    psi = re.search(r"<svg id='chart-score_psi'.*?</svg>", page, re.S).group(0)  # type: ignore[union-attr]
    assert len(re.findall(r"<circle class='dot", psi)) == 29
    rows = table_rows(page, "stability-table")
    assert len(rows) == 7
    assert rows[0] == [
        "2026-11-21",
        "v1",
        "2026-11-20 v1",
        "0.29",
        "0.961",
        "0.058",
        "0.5",
        "2,900",
        "100",
        "95",
    ]


def test_performance_without_the_headline_metrics_says_so():
    brier = [point(DAY, "realized", "brier", 0.12)]
    performance = section(render_health_html(nothing_yet(model_version=1, performance=brier)), "performance")
    assert "no ROC AUC or log loss recorded from 2026-10-23 to 2026-11-21" in performance
    assert "<svg" not in performance
