"""The validation report renders offline in a real browser: headless Chromium, no network.

Needs Debian's `chromium` package (`apt-get install chromium`). The screenshot is kept under
`var/test-artifacts/` for a human to look at.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from batchscore.examples.seed import SeedSpec, customers_snapshot
from batchscore.quality.outcome import ValidationFailed
from batchscore.quality.report import OFFLINE_POLICY
from batchscore.quality.suites import load_suite
from batchscore.quality.validation import validate_table
from batchscore.settings import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.browser]

WIDTH, HEIGHT = 1400, 1000
ARTIFACTS = REPO_ROOT / "var" / "test-artifacts"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("headless Chromium is needed: install Debian's `chromium` package")
    return path


def headless(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Chromium with a fresh profile and its own background traffic switched off."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},{HEIGHT}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", header[16:24])


@pytest.fixture
def failed_report(tmp_path) -> Path:
    table, _ = customers_snapshot(SeedSpec(rows=300, seed=5), date(2026, 11, 21))
    contracts = table["contract"].to_pylist()
    contracts[:2] = ["lifetime", "<b>forever</b>"]
    table = table.set_column(table.schema.get_field_index("contract"), "contract", pa.array(contracts))
    table = table.set_column(
        table.schema.get_field_index("discount_pct"), "discount_pct", pa.array([55.0] * table.num_rows)
    )
    with pytest.raises(ValidationFailed):
        validate_table(
            table,
            load_suite(REPO_ROOT / "expectations" / "churn" / "raw.json"),
            pipeline="churn",
            dataset="customers",
            stage="raw",
            partition="lake/raw/customers/dt=2026-11-21",
            report_dir=tmp_path / "report",
        )
    return tmp_path / "report" / "report.html"


def test_report_renders_offline_in_headless_chromium(failed_report, tmp_path):
    page = failed_report.read_text()
    assert f'content="{OFFLINE_POLICY}"' in page, "the page forbids itself any fetch"
    assert not re.search(r"(src|href)\s*=|url\(|@import|<script|<link", page, re.I), "no external assets"

    dom = headless(tmp_path / "profile-dom", "--dump-dom", failed_report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert '<span class="badge bad" id="status">FAILED</span>' in html
    failed_rows = re.findall(r"<tr class=\"fail\">(.*?)</tr>", html, re.S)
    assert len(failed_rows) == 1 and "expect_column_values_to_be_in_set" in failed_rows[0]
    assert "2 (0.6667%)" in failed_rows[0]
    assert '"lifetime"' in failed_rows[0] and "&lt;b&gt;forever&lt;/b&gt;" in failed_rows[0]
    warning_rows = re.findall(r"<tr class=\"warning\">(.*?)</tr>", html, re.S)
    assert len(warning_rows) == 1 and "expect_column_mean_to_be_between" in warning_rows[0]
    assert len(re.findall(r"<tr class=\"pass\">", html)) == 54

    shot = tmp_path / "report.png"
    result = headless(tmp_path / "profile-shot", f"--screenshot={shot}", failed_report.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert png_size(shot) == (WIDTH, HEIGHT)
    assert shot.stat().st_size > 30_000, "a rendered table, not a blank page"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "validation-report.png")
    shutil.copy(failed_report, ARTIFACTS / "validation-report.html")
