"""Reason codes published with their scores, on DuckDB and the real PostgreSQL: same slice, same
transaction. A publish replaces both, a failed audit publishes neither, a kill at any point of
the publish leaves the old pair or the new pair, never reasons without their scores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from batchscore.settings import REPO_ROOT
from batchscore.storage.lake import REASONS_MANIFEST
from batchscore.storage.warehouse import AuditFailed, ReasonsSlice, open_warehouse
from tests.warehouse.slices import DAY, reasons_file, scores_file, target
from tests.warehouse.test_faults import wait_for

TABLE = "score_reasons_churn"


def start_publisher_with_reasons(url: str, scores, reasons, *pause: str) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    """`publisher_process` publishing run `run-killed` (4 rows) with its reasons, pausing at `pause`."""
    command = [sys.executable, "-m", "tests.warehouse.publisher_process", "--reasons", str(reasons)]
    command += [url, str(scores), "run-killed", "4", *pause]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True)


def reasons_of(warehouse) -> list[tuple]:
    """Per key: (key, ranks, sum of contributions), from the analyst-facing table or view."""
    return warehouse.query(
        f"SELECT customer_id, count(*), CAST(sum(contribution) AS DOUBLE PRECISION) FROM {TABLE} "
        "GROUP BY customer_id ORDER BY customer_id"
    )


def pair(warehouse) -> tuple[list[tuple], list[tuple]]:
    """(scores' run id and keys, reasons' keys): what a reader sees together."""
    scores = warehouse.query("SELECT run_id, customer_id FROM scores_churn ORDER BY customer_id")
    return scores, [row[0] for row in reasons_of(warehouse)]


def publish(warehouse, tmp_path, name, keys, shift=0.0, run_id="run-1", k=3):  # type: ignore[no-untyped-def]
    scores = scores_file(tmp_path / name / "scores", keys, [0.5] * len(keys))
    reasons = reasons_file(tmp_path / name / "reasons", scores, keys, k=k, shift=shift)
    result = warehouse.publish_scores(
        target(run_id), scores, expected_rows=len(keys), reasons=ReasonsSlice(TABLE, reasons)
    )
    return result, scores, reasons


def test_reasons_are_published_and_a_rerun_replaces_them_once(warehouse, tmp_path):
    publish(warehouse, tmp_path, "a", [1, 2, 3], shift=0.0, run_id="run-1")
    columns = warehouse.query(f"SELECT * FROM {TABLE} ORDER BY customer_id, rank LIMIT 1")
    assert columns == [
        (1, DAY, 1, 1, "f1", 1.0, 1.0)
    ]  # key, run_date, model_version, rank, feature, value, contribution
    expected = pytest.approx(1 + 1 / 2 + 1 / 3)
    assert reasons_of(warehouse) == [(1, 3, expected), (2, 3, expected), (3, 3, expected)]

    publish(warehouse, tmp_path, "b", [2, 3, 4, 5], shift=1.0, run_id="run-2")
    shifted = pytest.approx(3 + 1 + 1 / 2 + 1 / 3)
    assert reasons_of(warehouse) == [(k, 3, shifted) for k in (2, 3, 4, 5)]
    assert warehouse.query(f"SELECT count(*) FROM {TABLE}") == [(12,)]


def test_a_publish_without_reasons_removes_the_slices_old_ones(warehouse, tmp_path):
    _, scores, _ = publish(warehouse, tmp_path, "a", [1, 2])
    warehouse.publish_scores(target("again"), scores, expected_rows=2)  # reasons=None (shadow): not touched
    assert len(reasons_of(warehouse)) == 2
    warehouse.publish_scores(target("off"), scores, expected_rows=2, reasons=ReasonsSlice(TABLE, None))
    assert reasons_of(warehouse) == []


@pytest.mark.parametrize(
    "spoil, message",
    [
        ("count", "expected 3 per row"),
        ("checksum", "computed with other scores"),
        ("nan", "contributions NaN or infinite"),
        ("rank", "does not hold each scored key once"),
    ],
)
def test_reasons_failing_the_audit_publish_nothing(warehouse, tmp_path, spoil, message):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    publish(warehouse, tmp_path, "old", [1, 2, 3], run_id="run-old")
    before = pair(warehouse), reasons_of(warehouse)
    scores = scores_file(tmp_path / "new" / "scores", [1, 2, 3, 4], [0.9] * 4)
    reasons = reasons_file(tmp_path / "new" / "reasons", scores, [1, 2, 3, 4])
    part = reasons / "part-00000.parquet"
    table = pq.read_table(part)
    if spoil == "count":
        pq.write_table(table.slice(0, 11), part)
    elif spoil == "checksum":
        scores_file(scores, [1, 2, 3, 4], [0.8] * 4)  # the scores were rewritten after the reasons
    elif spoil == "nan":
        values = table.column("contribution").to_pylist()
        values[5] = float("nan")
        pq.write_table(table.set_column(4, "contribution", pa.array(values)), part)
    else:  # key 1 twice at rank 2, key 2 never
        keys = pc.if_else(pc.equal(table.column("customer_id"), 2), 1, table.column("customer_id"))
        pq.write_table(table.set_column(0, "customer_id", keys), part)
    with pytest.raises(AuditFailed, match=message):
        warehouse.publish_scores(target("run-bad"), scores, 4, reasons=ReasonsSlice(TABLE, reasons))
    assert (pair(warehouse), reasons_of(warehouse)) == before


def test_reasons_without_a_manifest_fail_the_audit(warehouse, tmp_path):
    scores = scores_file(tmp_path / "scores", [1], [0.5])
    reasons = reasons_file(tmp_path / "reasons", scores, [1])
    (reasons / REASONS_MANIFEST).unlink()
    with pytest.raises(AuditFailed, match="unreadable reasons"):
        warehouse.publish_scores(target(), scores, 1, reasons=ReasonsSlice(TABLE, reasons))
    assert warehouse.query("SELECT count(*) FROM published_slices") == [(0,)]


@pytest.mark.parametrize("point", ["staged", "swapped", "committed"])
def test_kill_during_publication_never_leaves_reasons_without_their_scores(warehouse_url, tmp_path, point):
    kill_during_publication(warehouse_url, tmp_path, point)


def test_kill_while_postgresql_streams_the_copy_leaves_the_old_pair(pg_url, tmp_path):
    """Only PostgreSQL streams a COPY, so only it has the `copying` point."""
    kill_during_publication(pg_url, tmp_path, "copying")


def kill_during_publication(warehouse_url: str, tmp_path, point: str) -> None:  # type: ignore[no-untyped-def]
    warehouse = open_warehouse(warehouse_url)
    publish(warehouse, tmp_path, "old", [1, 2, 3], run_id="run-old")
    old = pair(warehouse)
    scores = scores_file(tmp_path / "new" / "scores", [1, 2, 3, 4], [0.5] * 4)
    reasons = reasons_file(tmp_path / "new" / "reasons", scores, [1, 2, 3, 4], shift=1.0)
    marker = tmp_path / "paused"
    process = start_publisher_with_reasons(warehouse_url, scores, reasons, point, str(marker))
    wait_for(marker, process)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL

    seen_scores, seen_reasons = pair(warehouse)
    assert seen_reasons == [key for _, key in seen_scores], "reasons and scores are of one slice"
    if point == "committed":
        assert {run for run, _ in seen_scores} == {"run-killed"} and len(seen_reasons) == 4
        assert reasons_of(warehouse)[0][2] == pytest.approx(3 + 1 + 1 / 2 + 1 / 3)
    else:
        assert (seen_scores, seen_reasons) == old

    warehouse.publish_scores(target("run-retry"), scores, 4, reasons=ReasonsSlice(TABLE, reasons))
    assert warehouse.query(f"SELECT count(*) FROM {TABLE}") == [(12,)]
    if warehouse.dialect == "postgresql":
        tables = warehouse.query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname LIKE '{TABLE}_%'"
        )
        assert len(tables) == 1, f"staged or dropped reasons tables left behind: {tables}"
