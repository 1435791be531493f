"""The gate's offline HTML report: inline CSS, no scripts, no external assets."""

from __future__ import annotations

import html
from typing import Any

from batchscore.quality.outcome import short_json

OFFLINE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""The report's Content-Security-Policy: the browser itself refuses any fetch the page might make."""

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2430}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:20px 0 8px} .meta{color:#566070;margin-bottom:16px}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:600;color:#fff}
.ok{background:#1f8a4c} .bad{background:#c62828} .warn{background:#b26a00}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #e3e6ea;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f5f7f9;font-weight:600} tr.fail td{background:#fdecec} tr.warning td{background:#fff6e5}
ul.contract li{background:#fdecec;padding:4px 8px;margin:2px 0;list-style:none}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;white-space:pre-wrap;word-break:break-word}
td.name code{white-space:nowrap}
"""


def render_html(document: dict[str, Any]) -> str:
    """batchscore's own report from the result JSON: inline CSS, no scripts, no external assets."""
    e = html.escape
    outcome = document["outcome"]
    status = "PASSED" if outcome["success"] else "FAILED"
    badge = "ok" if outcome["success"] else "bad"
    contract = document["contract"]["violations"]
    sections = []
    if contract:
        items = "".join(f"<li>{e(problem)}</li>" for problem in contract)
        sections.append(
            f"<h2 id='contract'>Contract broken: the suite was not run</h2><ul class='contract'>{items}</ul>"
        )
    if document.get("quarantine"):
        sections.append(quarantine_section(document["quarantine"]))
    rows = []
    order = {"fail": 0, "warning": 1, "pass": 2}
    states = [
        ("pass" if row["success"] else ("warning" if row["severity"] == "warning" else "fail"), row)
        for row in document["expectations"]
    ]
    for state, row in sorted(states, key=lambda pair: order[pair[0]]):  # failures first
        count = (
            ""
            if row["unexpected_count"] is None
            else f"{row['unexpected_count']} ({row['unexpected_percent'] or 0:.4g}%)"
        )
        rows.append(
            f"<tr class='{state}'><td>{e(state)}</td><td class='name'><code>{e(row['type'])}</code></td>"
            f"<td>{e(str(row['column'] or ''))}</td><td><code>{e(short_json(row['kwargs'], 400))}</code></td>"
            f"<td>{e(row['severity'])}</td><td>{e(count)}</td>"
            f"<td><code>{e(short_json(row['examples'], 300)) if row['examples'] else ''}</code></td>"
            f"<td><code>{e(short_json(row['observed'], 300)) if row['observed'] is not None else ''}</code></td></tr>"
        )
    if rows:
        sections.append(
            "<h2>Expectations</h2><table id='expectations'><thead><tr><th>status</th><th>expectation</th>"
            "<th>column</th><th>arguments</th><th>severity</th><th>unexpected</th><th>examples</th>"
            f"<th>observed</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    declared = "".join(
        f"<tr><td>{e(name)}</td><td><code>{e(kind)}</code></td></tr>"
        for name, kind in document["contract"]["declared"].items()
    )
    sections.append(
        "<h2>Declared contract</h2><table id='schema'><thead><tr><th>column</th><th>Arrow type</th></tr>"
        f"</thead><tbody>{declared}</tbody></table>"
    )
    title = f"{outcome['pipeline']} · {outcome['dataset']} · {outcome['stage']}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{OFFLINE_POLICY}"><title>{e(title)} validation</title>
<style>{STYLE}</style></head><body>
<h1>{e(title)} <span class="badge {badge}" id="status">{status}</span></h1>
<div class="meta">partition <code>{e(outcome["partition"])}</code><br>suite <code>{e(outcome["suite"])}</code><br>
{outcome["passed"]}/{outcome["evaluated"]} expectations met on {outcome["rows"]} rows in {outcome["seconds"]:.2f}s
({e(outcome["engine"])} engine)</div>
{"".join(sections)}
</body></html>
"""


def quarantine_section(held: dict[str, Any]) -> str:
    """How many rows the gate held aside before running the suite, and which rules they broke."""
    e = html.escape
    within = held["quarantined_rows"] <= held["max_rows"]
    verdict = "within" if within else "ABOVE"
    rules = "".join(
        f"<tr><td><code>{e(name)}</code></td><td>{count:,}</td></tr>" for name, count in held["rules"].items()
    )
    share = held["quarantined_rows"] / held["rows"] if held["rows"] else 0.0
    kept = (
        f"The suite ran on the {held['kept_rows']:,} rows kept; the held rows are published to"
        if within
        else "The suite ran on every row and the run fails: nothing is published. Within the tolerance "
        "they would be published to"
    )
    return (
        f"<h2 id='quarantine'>Quarantine: {held['quarantined_rows']:,} of {held['rows']:,} rows held aside "
        f"({share:.3%}, {verdict} the tolerance of {held['max_share']:.3%})</h2>"
        f"<p>{e(kept)} <code>{e(held['table'])}</code>.</p>"
        "<table id='quarantine-rules'><thead><tr><th>rule broken</th><th>rows</th></tr></thead>"
        f"<tbody>{rules}</tbody></table>"
    )
