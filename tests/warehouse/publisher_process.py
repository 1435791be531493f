"""A publisher in its own process, for fault tests that kill it at a named point.

python -m tests.warehouse.publisher_process [--reasons DIR] [--quarantine N] URL SCORES_DIR RUN_ID ROWS [PAUSE_POINT MARKER [RELEASE]]

At PAUSE_POINT it writes MARKER, then waits until RELEASE exists (forever without one), so a
test can SIGKILL it there or let it go on.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from batchscore.storage.warehouse import QuarantineSlice, ReasonsSlice, open_warehouse
from tests.warehouse.slices import quarantined, target


def main(argv: list[str]) -> None:
    reasons = None
    if argv[0] == "--reasons":  # publish these reasons with the scores, in the same transaction
        reasons = ReasonsSlice("score_reasons_churn", Path(argv[1]))
        argv = argv[2:]
    held = None
    if argv[0] == "--quarantine":  # and N quarantined rows of the day, in the same transaction
        held = QuarantineSlice("quarantine_churn", quarantined(int(argv[1]), run_id="killed"))
        argv = argv[2:]
    url, scores_dir, run_id, rows = argv[:4]
    pause_point, marker, release = [*argv[4:], None, None, None][:3]

    def pause_at(point: str) -> None:
        if point == pause_point and marker:
            Path(marker).write_text(point)
            while release is None or not Path(release).exists():
                time.sleep(0.02)

    open_warehouse(url).publish_scores(
        target(run_id), Path(scores_dir), int(rows), pause_at=pause_at, reasons=reasons, quarantine=held
    )


if __name__ == "__main__":
    main(sys.argv[1:])
