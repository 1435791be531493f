"""What a run costs: CPU seconds of a stage, counting the processes it drives (Spark's JVM and its workers).

A stage that runs Spark in `local[*]` mode spends most of its CPU in the JVM child process
and the Python workers that JVM starts, not in the task's own process; the process tree's
CPU is what the machine actually spent. (On a cluster, executors' CPU is not seen here.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psutil


def process_tree_cpu_seconds() -> float:
    """User + system CPU seconds of this process, its reaped children, and its live descendants."""
    me = psutil.Process()
    times = me.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in me.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.Error:  # exited while we looked
            continue
        total += child_times.user + child_times.system
    return float(total)


def costed(run: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Call a stage's `run` and add `cpu_seconds` (process tree) to its result."""
    started = process_tree_cpu_seconds()
    result = run(*args, **kwargs)
    return {**result, "cpu_seconds": round(process_tree_cpu_seconds() - started, 3)}
