"""Personal data never leaves the raw tier in clear: a real DagRun over a partition whose
emails and phones include recognisable canaries (on a row the quarantine holds aside), then a
search of every file, table and log the run wrote (lake outputs, reports, Airflow's logs and
metadata DB, the warehouse and its quarantine table, temp files, the command's output) for any
email or phone number. The raw tier is the raw partitions and the quarantine's clean copy of
the kept raw rows (`lake/clean`, the raw rows less the held-aside ones, read by build_features)."""

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
from tests.integration.prometheus_servers import query, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DAY, ROWS, KEY = date(2026, 11, 21), 2000, "pii-test-deployment-key"
QUARANTINED = 20
CANARIES = {"email": "jane.canary.doe@@example.com", "phone": "+1-555-CANARY-77"}
# Every email and phone of the example looks like these: none may appear in any output.
NEEDLES = [rb"customer\.[0-9]+@example\.com", rb"\+1-555-[0-9]{7}", rb"jane\.canary", rb"CANARY-77"]


def plant_canaries(home: Path) -> pa.Table:
    """Rewrite the day's partition with malformed (so reported) canary contact details on row 10
    and a NaN charge (so quarantined) on row QUARANTINED; returns the partition."""
    table, _ = customers_snapshot(SeedSpec(rows=ROWS), DAY)
    for column, canary in CANARIES.items():
        values = table.column(column).to_pylist()
        values[10] = canary
        table = table.set_column(table.schema.get_field_index(column), column, pa.array(values))
    charges = table.column("monthly_charges").to_pylist()
    charges[QUARANTINED] = float("nan")  # this row is held aside, its contact details with it
    table = table.set_column(
        table.schema.get_field_index("monthly_charges"), "monthly_charges", pa.array(charges)
    )
    lake = Lake(str(home / "lake"))
    shutil.rmtree(lake.raw_partition(CUSTOMERS, DAY))
    write_partition(lake, CUSTOMERS, DAY, table)
    return table


def leaks(home: Path, outputs: str) -> list[str]:
    found = [f"command output: {n!r}" for n in NEEDLES if re.search(n, outputs.encode())]
    raw_tier = (home / "lake" / "raw", home / "lake" / "clean")
    for path in home.rglob("*"):
        if path.is_file() and not any(tier in path.parents for tier in raw_tier):
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


def pushed(prometheus: str) -> dict[str, float]:
    """The run's quarantine and row-count series as Prometheus scraped them from the gateway."""
    wanted = [
        "batchscore_quarantined_rows",
        "batchscore_quarantine_max_rows",
        'batchscore_stage_rows{stage="validate_raw"}',
        'batchscore_stage_rows{stage="publish"}',
        "batchscore_run_success",
    ]

    def series(expr: str) -> list[dict]:
        name, _, labels = expr.partition("{")
        selector = f'{name}{{pipeline="churn",job="batchscore_nightly"{"," + labels if labels else "}"}'
        return query(prometheus, selector)

    found = {expr: wait_until(lambda e=expr: series(e), 30) for expr in wanted}
    return {expr: float(result[0]["value"][1]) for expr, result in found.items()}


def test_a_run_over_personal_data_writes_none_of_it_in_clear(tmp_path, monkeypatch, servers):
    """Also the one DagRun whose metrics push is read back from a real Prometheus."""
    home = tmp_path / "home"
    gateway, prometheus = servers
    monkeypatch.setenv("BATCHSCORE_PII_KEY", KEY)
    monkeypatch.setenv("BATCHSCORE_PUSHGATEWAY_URL", gateway)
    monkeypatch.setenv("TMPDIR", str(home / "tmp"))  # temp files are searched too
    (home / "tmp").mkdir(parents=True)
    ok(cli(home, "lake", "seed", "--days", "12", "--rows", str(ROWS), "--end-date", DAY.isoformat()))
    ok(cli(home, "train", "--pipeline", "churn", "--date", "2026-11-17"))
    planted = plant_canaries(home)
    run = cli(home, "run", "--pipeline", "churn", "--date", DAY.isoformat())
    out = ok(run)
    assert "SUCCESS" in out and f"published {ROWS - 1:,}" in out
    assert f"quarantine: 1 of {ROWS:,} raw rows held aside in quarantine_churn" in out

    assert leaks(home, run.stdout + run.stderr) == []
    assert pushed(prometheus) == {
        "batchscore_quarantined_rows": 1.0,
        "batchscore_quarantine_max_rows": 2.0,
        'batchscore_stage_rows{stage="validate_raw"}': float(ROWS),
        'batchscore_stage_rows{stage="publish"}': float(ROWS - 1),
        "batchscore_run_success": 1.0,
    }
    # The malformed canaries were reported, as their keyed hashes.
    result = home / "lake" / "reports" / "validation" / "churn" / f"dt={DAY}" / "raw" / "result.json"
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        (held,) = con.execute("SELECT row_json FROM quarantine_churn").fetchone()
    for column, canary in CANARIES.items():
        digest = hmac.new(KEY.encode(), canary.encode(), hashlib.sha256).hexdigest()[:16]
        assert f"pii:{digest}" in result.read_text()
        value = str(planted.column(column)[QUARANTINED].as_py())
        digest = hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()[:16]
        assert f"pii:{digest}" in held, "the quarantined row keeps its contact details, hashed"
