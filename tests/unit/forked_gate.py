"""Run gates in-process and through forked workers in a fresh, single-threaded process.

python -m tests.unit.forked_gate <scratch dir> <kind> [<kind> ...]

Used by `test_validation.py` (a pytest session has other threads, so its gates never fork).
Prints one JSON object: for each broken kind (and a clean partition) whether both runs gave
the same message and the same result rows, and how many processes each used; and what a
daemonic child (which may not fork) did.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from pathlib import Path
from typing import Any

from batchscore.quality import validation
from batchscore.quality.outcome import ValidationFailed
from tests.unit.test_validation import broken, customers, run


def gate(table: Any, folder: Path, workers: int) -> tuple[bool, str, list[Any], int]:
    try:
        outcome = run(table, "raw", folder, workers=workers)
        message, success = "", True
    except ValidationFailed as failed:
        outcome, message, success = failed.result, str(failed).replace(str(folder), "<dir>"), False
    rows = json.loads((folder / "raw" / "result.json").read_text())["expectations"]
    return success, message, rows, outcome.workers


def in_daemon(folder: Path, queue: Any) -> None:
    outcome = run(customers(), "raw", folder, workers=2)
    queue.put({"success": outcome.success, "passed": outcome.passed, "workers": outcome.workers})


def main(scratch: Path, kinds: list[str]) -> None:
    validation.PARALLEL_MIN_ROWS = 0
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=in_daemon, args=(scratch / "daemon", queue), daemon=True)
    child.start()
    daemonic = queue.get(timeout=300)
    child.join(60)
    checks = {}
    for kind in [*kinds, "clean"]:
        table = customers() if kind == "clean" else broken(kind)[0]
        alone = gate(table, scratch / kind / "alone", workers=1)
        forked = gate(table, scratch / kind / "forked", workers=2)
        checks[kind] = {
            "success": forked[0],
            "same_message": alone[0] == forked[0] and alone[1] == forked[1],
            "same_results": alone[2] == forked[2],
            "workers": [alone[3], forked[3]],
        }
    print(json.dumps({"daemonic_child": daemonic, "kinds": checks}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
