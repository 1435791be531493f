"""Retrying a warehouse operation that lost a race to another writer or reader."""

from __future__ import annotations

import random
import time
from collections.abc import Callable


def with_backoff(
    attempt: Callable[[], object],
    retryable: Callable[[BaseException], bool],
    attempts: int = 8,
    first_delay_s: float = 0.05,
    max_delay_s: float = 2.0,
) -> object:
    """Run `attempt`, retrying retryable errors with exponential backoff; the last error is re-raised."""
    delay = first_delay_s
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except Exception as exc:
            if number == attempts or not retryable(exc):
                raise
            time.sleep(delay * (1 + 0.5 * random.random()))  # jitter: contenders spread out
            delay = min(delay * 2, max_delay_s)
    raise AssertionError("unreachable")
