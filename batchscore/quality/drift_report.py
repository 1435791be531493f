"""The Evidently drift report of a day, rendered from a deterministic sample.

The drift gate decides on statistics computed over every row (`batchscore.quality.drift`);
the report is for people: its plots and per-column values come from a bounded, deterministic
sample (`drift.report_sample_rows` rows of each side), and the report says so, in the HTML
(a note at the top) and in the JSON (`batchscore_sample`).

Its cost does not follow the rows but the columns: for every column Evidently 0.7 builds
plotly figures, and `DataDriftPreset` builds them twice, once per `ValueDrift` metric (widgets
its own `render` never shows; neither are they in the JSON, which holds values only) and once
for the drift table it does show. `write_drift_report` skips the first, unshown set; the test
suite checks that the HTML and the JSON stay the same as without the skip.
"""

from __future__ import annotations

import html
import json
import os
import re
import threading
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_RENDER_LOCK = threading.Lock()


def deterministic_sample(df: pd.DataFrame, n: int, key: str, seed: int = 0) -> pd.DataFrame:
    """The same `n` rows for the same data whatever its order: smallest hashes of (seed, key)."""
    if len(df) <= n:
        return df.sort_values(key).reset_index(drop=True)
    salted = pd.DataFrame({"key": df[key].to_numpy(), "seed": seed})
    hashes = pd.util.hash_pandas_object(salted, index=False).to_numpy()
    keep = np.argpartition(hashes, n - 1)[:n]
    return df.iloc[keep].sort_values(key).reset_index(drop=True)


def sample_note(sample: dict[str, int]) -> str:
    """One sentence on what the report's rows are, for the HTML and the stage's result."""
    return (
        f"The plots and per-column values of this report use a deterministic sample of "
        f"{sample['reference_rows']:,} of {sample['reference_total_rows']:,} reference rows and "
        f"{sample['current_rows']:,} of {sample['current_total_rows']:,} current rows; "
        "the drift gate decides on statistics over all rows (drift_metrics)."
    )


@contextmanager
def unshown_value_drift_widgets_skipped(skip: bool = True) -> Iterator[None]:
    """While the report runs, `ValueDrift` builds no widgets (`DataDriftPreset.render` drops
    them); serialized so that two reports in one process never interleave the switch."""
    from evidently.metrics.column_statistics import ValueDriftCalculation

    with _RENDER_LOCK:
        if not skip:
            yield
            return
        original = ValueDriftCalculation._render
        ValueDriftCalculation._render = lambda self, *args, **kwargs: []
        try:
            yield
        finally:
            ValueDriftCalculation._render = original


def _with_note(page: str, note: str) -> str:
    """The page with `note` shown first in its body."""
    banner = (
        '<p id="batchscore-sample-note" style="font-family:sans-serif;margin:8px 16px;">'
        f"{html.escape(note)}</p>"
    )
    match = re.search(r"<body[^>]*>", page)
    if match is None:
        return banner + page
    return page[: match.end()] + banner + page[match.end() :]


def _write_atomically(target: Path, text: str) -> None:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)


def _drift_report(columns: list[str], title: str, methods: Any, thresholds: Any) -> Any:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    preset = DataDriftPreset(
        columns=columns,
        method="psi",
        per_column_method=dict(methods or {}) or None,
        per_column_threshold=dict(thresholds or {}) or None,
    )
    return Report([preset], metadata={"title": title})


def write_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    out_dir: str | Path,
    *,
    title: str,
    prediction_column: str | None = None,
    methods: dict[str, str] | None = None,
    thresholds: dict[str, float] | None = None,
    sample: dict[str, int] | None = None,
    skip_unshown_widgets: bool = True,
) -> tuple[Path, Path]:
    """Evidently's data drift report (numerical columns) as `drift.html` and `drift.json`.

    `methods` and `thresholds` map every column to the gate's method and threshold, so the
    report flags the same columns the gate would on the same rows. `sample` (rows and total
    rows of each side) puts the sample note in the HTML and the JSON.
    """
    from evidently import DataDefinition, Dataset
    from evidently.legacy.utils import NumpyEncoder

    columns = [*features, *([prediction_column] if prediction_column else [])]
    definition = DataDefinition(numerical_columns=columns)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with unshown_value_drift_widgets_skipped(skip_unshown_widgets):
            snapshot = _drift_report(columns, title, methods, thresholds).run(
                current_data=Dataset.from_pandas(current[columns], data_definition=definition),
                reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
            )
        page = snapshot.get_html_str(as_iframe=False)
        body = snapshot.dict()
    if sample is not None:
        page = _with_note(page, sample_note(sample))
        body["batchscore_sample"] = {**sample, "note": sample_note(sample)}
    html_path, json_path = out / "drift.html", out / "drift.json"
    _write_atomically(html_path, page)
    _write_atomically(json_path, json.dumps(body, cls=NumpyEncoder))
    return html_path, json_path
