"""A stage's cost counts the CPU of the processes it drives, not only its own."""

import subprocess
import sys

from batchscore.telemetry.costs import costed, process_tree_cpu_seconds


def burn_in_child() -> dict[str, int]:
    subprocess.run([sys.executable, "-c", "sum(range(20_000_000))"], check=True)
    return {"rows": 7}


def test_cpu_of_a_child_process_is_counted():
    before = process_tree_cpu_seconds()
    result = costed(burn_in_child)
    assert result["rows"] == 7
    assert result["cpu_seconds"] >= 0.1  # the child's loop alone takes several tenths of a CPU second
    # both readings are whole clock ticks (10 ms); their float difference may fall a hair short
    assert process_tree_cpu_seconds() - before >= result["cpu_seconds"] - 0.011
