"""Terminal output shared by the command groups: logging set-up, progress lines, tables."""

from __future__ import annotations

import logging
import sys
from typing import Any


def configure_logging(verbose: bool) -> None:
    """Structured (logfmt) logs on stderr; quiet by default, third-party libraries quieter still."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            'ts=%(asctime)s level=%(levelname)s logger=%(name)s msg="%(message)s"', "%Y-%m-%dT%H:%M:%S"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for noisy in ("py4j", "great_expectations", "evidently", "airflow", "sqlalchemy", "alembic"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)


def progress(message: str) -> None:
    print(f"  {message}", flush=True)


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain aligned table for terminals (use --json for scripts)."""
    if not rows:
        print("(none)")
        return
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
