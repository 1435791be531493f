"""Personal data never leaves the raw partition in clear: a real DagRun over a partition whose
emails and phones include recognisable canaries, then a search of every file, table and log
the run wrote (lake outputs, reports, Airflow's logs and metadata DB, the warehouse, temp files,
the command's output) for any email or phone number."""

from __future__ import annotations

import hashlib
import hmac
import re
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from batchscore.examples.seed import CUSTOMERS, SeedSpec, customers_snapshot, write_partition
from batchscore.storage.lake import Lake
from tests.integration.batchscore_cli import cli, ok

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DAY, ROWS, KEY = date(2026, 11, 21), 2000, "pii-test-deployment-key"
CANARIES = {"email": "jane.canary.doe@@example.com", "phone": "+1-555-CANARY-77"}
# Every email and phone of the example looks like these: none may appear in any output.
NEEDLES = [rb"customer\.[0-9]+@example\.com", rb"\+1-555-[0-9]{7}", rb"jane\.canary", rb"CANARY-77"]


def plant_canaries(home: Path) -> None:
    """Rewrite the day's partition with malformed (so reported) canary contact details."""
    table, _ = customers_snapshot(SeedSpec(rows=ROWS), DAY)
    for column, canary in CANARIES.items():
        values = table.column(column).to_pylist()
        values[10] = canary
        table = table.set_column(table.schema.get_field_index(column), column, pa.array(values))
    lake = Lake(str(home / "lake"))
    shutil.rmtree(lake.raw_partition(CUSTOMERS, DAY))
    write_partition(lake, CUSTOMERS, DAY, table)


def leaks(home: Path, outputs: str) -> list[str]:
    found = [f"command output: {n!r}" for n in NEEDLES if re.search(n, outputs.encode())]
    raw = home / "lake" / "raw"
    for path in home.rglob("*"):
        if path.is_file() and raw not in path.parents:
            data = path.read_bytes()
            found += [f"{path.relative_to(home)}: {n!r}" for n in NEEDLES if re.search(n, data)]
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables ORDER BY 1, 2"
        ).fetchall()
        assert len(tables) > 5
        for schema, name in tables:
            text = repr(con.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall())
            found += [f"table {schema}.{name}: {n!r}" for n in NEEDLES if re.search(n, text.encode())]
    return found


def test_a_run_over_personal_data_writes_none_of_it_in_clear(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("BATCHSCORE_PII_KEY", KEY)
    monkeypatch.setenv("TMPDIR", str(home / "tmp"))  # temp files are searched too
    (home / "tmp").mkdir(parents=True)
    ok(cli(home, "lake", "seed", "--days", "12", "--rows", str(ROWS), "--end-date", DAY.isoformat()))
    ok(cli(home, "train", "--pipeline", "churn", "--date", "2026-11-17"))
    plant_canaries(home)
    run = cli(home, "run", "--pipeline", "churn", "--date", DAY.isoformat())
    out = ok(run)
    assert "SUCCESS" in out and f"published {ROWS:,}" in out

    assert leaks(home, run.stdout + run.stderr) == []
    # The malformed canaries were reported, as their keyed hashes.
    result = home / "lake" / "reports" / "validation" / "churn" / f"dt={DAY}" / "raw" / "result.json"
    for canary in CANARIES.values():
        digest = hmac.new(KEY.encode(), canary.encode(), hashlib.sha256).hexdigest()[:16]
        assert f"pii:{digest}" in result.read_text()
