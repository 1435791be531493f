"""One module per pipeline stage. Each runs in-process (called by the DAG) or on its own:

python -m jobs.<stage> --pipeline churn --date 2026-11-21
spark-submit --py-files var/dist/batchscore.zip jobs/<stage>.py --pipeline churn --date 2026-11-21
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from typing import Any


def stage_arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--pipeline", required=True, help="pipeline name (pipelines/<name>.yaml)")
    parser.add_argument("--date", required=True, type=date.fromisoformat, help="logical date, YYYY-MM-DD")
    return parser


def print_result(result: dict[str, Any]) -> None:
    print(json.dumps(result, default=str, sort_keys=True))
