"""The records beside the scores, as every backend writes them: drift rows and decision evidence."""

from __future__ import annotations

import json
from datetime import date
from typing import Any


def drift_row(pipeline: str, run_date: date, model_version: int, r: dict[str, Any]) -> list[Any]:
    return [
        pipeline,
        run_date,
        model_version,
        r.get("segment", "all"),
        r["feature"],
        r["method"],
        r["statistic"],
        r["threshold"],
        r["drifted"],
    ]


def evidence_json(evidence: dict[str, Any]) -> str:
    return json.dumps(evidence, default=str, sort_keys=True)
