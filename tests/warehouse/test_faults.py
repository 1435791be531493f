"""Faults against the real PostgreSQL and DuckDB; each test asserts what the warehouse holds afterwards.

A publisher subprocess is killed with SIGKILL at a named point of its publish (see
`publisher_process`), a PostgreSQL connection is terminated mid-COPY, two publishers race
for one slice. Afterwards the slice holds exactly one complete set, and a retry publishes once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from batchscore.settings import REPO_ROOT
from batchscore.storage.warehouse import open_warehouse
from batchscore.storage.warehouse.duckdb import DuckDBWarehouse
from tests.warehouse.slices import scores_file, target


def start_publisher(url: str, scores: Path, run_id: str, rows: int, *pause: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [
        sys.executable,
        "-m",
        "tests.warehouse.publisher_process",
        url,
        str(scores),
        run_id,
        str(rows),
        *pause,
    ]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(
                f"publisher exited ({process.returncode}) before {path.name}: {process.stderr.read()}"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"publisher never reached {path.name}")
        time.sleep(0.02)


def slice_contents(warehouse) -> list[tuple]:
    return warehouse.query(
        "SELECT run_id, count(*), count(DISTINCT customer_id), sum(score) FROM scores_churn GROUP BY 1"
    )


def pg_partitions(warehouse) -> list[str]:
    """Every table in the test's schema that holds scores (partitions and strays alike)."""
    return [
        name
        for (name,) in warehouse.query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname LIKE 'scores_churn_%' ORDER BY 1"
        )
    ]


@pytest.mark.parametrize("point", ["staged", "swapped", "committed"])
def test_kill_9_of_the_publisher_then_retry_publishes_exactly_once(warehouse_url, tmp_path, point):
    warehouse = open_warehouse(warehouse_url)
    old = scores_file(tmp_path / "old", [1, 2, 3], [0.1, 0.1, 0.1])
    warehouse.publish_scores(target("run-old"), old, expected_rows=3)
    new = scores_file(tmp_path / "new", [1, 2, 3, 4], [0.5, 0.5, 0.5, 0.5])
    marker = tmp_path / "paused"
    process = start_publisher(warehouse_url, new, "run-killed", 4, point, str(marker))
    wait_for(marker, process)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL

    if point == "committed":  # the commit happened: the new set is there, whole
        assert slice_contents(warehouse) == [("run-killed", 4, 4, 2.0)]
    else:  # killed before the commit: the old set, untouched
        assert slice_contents(warehouse) == [("run-old", 3, 3, pytest.approx(0.3))]

    retry = warehouse.publish_scores(target("run-retry"), new, expected_rows=4)
    assert retry.replaced_rows == (4 if point == "committed" else 3)
    assert slice_contents(warehouse) == [("run-retry", 4, 4, 2.0)]
    assert warehouse.query("SELECT run_id, row_count FROM published_slices") == [("run-retry", 4)]
    if warehouse.dialect == "postgresql":
        assert pg_partitions(warehouse) == [retry.partition], "a staged table was left behind"


@pytest.mark.integration
def test_connection_cut_during_copy_leaves_the_old_set(pg_url, tmp_path):
    import psycopg

    warehouse = open_warehouse(pg_url)
    old = scores_file(tmp_path / "old", [1, 2], [0.1, 0.1])
    warehouse.publish_scores(target("run-old"), old, expected_rows=2)
    new = scores_file(tmp_path / "new", [1, 2, 3], [0.9, 0.9, 0.9])
    cut: list[int] = []

    def cut_connection(point: str) -> None:
        if point != "copying":
            return
        with warehouse.connect(autocommit=True) as admin:
            rows = admin.execute(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'COPY %%' AND pid <> pg_backend_pid()"
            ).fetchall()
        cut.extend(pid for pid, terminated in rows if terminated)

    with pytest.raises(psycopg.OperationalError):
        warehouse.publish_scores(target("run-cut"), new, expected_rows=3, pause_at=cut_connection)
    assert len(cut) == 1
    assert slice_contents(warehouse) == [("run-old", 2, 2, pytest.approx(0.2))]
    assert len(pg_partitions(warehouse)) == 1

    warehouse.publish_scores(target("run-retry"), new, expected_rows=3)
    assert slice_contents(warehouse) == [("run-retry", 3, 3, pytest.approx(2.7))]
    assert len(pg_partitions(warehouse)) == 1


@pytest.mark.slow
def test_two_publisher_processes_racing_for_one_slice_leave_one_set(warehouse_url, tmp_path):
    warehouse = open_warehouse(warehouse_url)
    warehouse.migrate()
    first = scores_file(tmp_path / "first", [1, 2, 3], [0.2, 0.2, 0.2])
    second = scores_file(tmp_path / "second", [1, 2, 3], [0.6, 0.6, 0.6])
    marker, release = tmp_path / "paused", tmp_path / "release"
    holder = start_publisher(warehouse_url, first, "run-first", 3, "swapped", str(marker), str(release))
    wait_for(marker, holder)
    contender = start_publisher(warehouse_url, second, "run-second", 3)
    if warehouse.dialect == "postgresql":  # the contender queues on the slice's advisory lock
        waiting = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        deadline = time.monotonic() + 30
        while warehouse.query(waiting) == [(0,)] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert warehouse.query(waiting) == [(1,)]
    else:  # the contender cannot open the file yet and backs off
        time.sleep(0.5)
    assert contender.poll() is None, "the second publisher did not wait for the first"
    release.write_text("go")
    assert holder.wait(timeout=60) == 0, holder.stderr.read()
    assert contender.wait(timeout=60) == 0, contender.stderr.read()
    assert slice_contents(warehouse) == [("run-second", 3, 3, pytest.approx(1.8))]
    assert warehouse.query("SELECT run_id FROM published_slices") == [("run-second",)]


def test_duckdb_write_conflicts_are_re_raised_when_retries_run_out(tmp_path):
    import duckdb

    url = f"duckdb://{tmp_path / 'w.duckdb'}"
    patient, impatient = DuckDBWarehouse(url), DuckDBWarehouse(url, retry_attempts=1)
    first = scores_file(tmp_path / "first", [1, 2], [0.2, 0.2])
    second = scores_file(tmp_path / "second", [1, 2], [0.7, 0.7])
    patient.publish_scores(target("run-zero"), second, expected_rows=2)  # both will delete this set
    holding, contender_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold(point: str) -> None:
        if point == "swapped":
            holding.set()
            contender_done.wait(30)

    def contend() -> None:
        holding.wait(30)
        try:
            impatient.publish_scores(target("run-second"), second, expected_rows=2)
        except BaseException as exc:
            errors.append(exc)
        finally:
            contender_done.set()

    thread = threading.Thread(target=contend)
    thread.start()
    patient.publish_scores(target("run-first"), first, expected_rows=2, pause_at=hold)
    thread.join()
    assert len(errors) == 1 and isinstance(errors[0], duckdb.TransactionException), errors
    assert "onflict" in str(errors[0])
    assert slice_contents(patient) == [("run-first", 2, 2, pytest.approx(0.4))]
