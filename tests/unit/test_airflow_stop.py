"""`make airflow-stop` judges a component's process group dead once only zombies are left: a
container's PID 1 may never reap what it adopted."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from batchscore.orchestration.airflow_server import _group_alive, process_states

ORPHAN_MAKER = """
import subprocess, sys, time
child = subprocess.Popen(["true"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(60)  # never waits for the child: it stays a zombie that is not the test's to reap
"""


def test_a_group_of_only_a_zombie_someone_else_owns_is_dead():
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN_MAKER], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        deadline = time.monotonic() + 10
        while process_states(pid) != {pid: "Z"} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_states(pid) == {pid: "Z"}, "the child should be an unreaped zombie"
        assert not _group_alive(pid)
    finally:
        parent.kill()
        parent.wait()


def test_a_running_group_is_alive_until_killed():
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        states = process_states(sleeper.pid) or {}
        assert list(states) == [sleeper.pid] and states[sleeper.pid] not in "ZX"  # R or S while it starts
        assert _group_alive(sleeper.pid)
        sleeper.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _group_alive(sleeper.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _group_alive(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
