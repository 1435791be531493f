"""The model-health page renders offline in a real browser: headless Chromium with its network
cut, every section and chart laid out, nothing fetched, nothing on the console.

Needs Debian's `chromium` and `chromium-driver` (`make browser`). The screenshot is kept under
`var/test-artifacts/` for a human to look at.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from batchscore.quality.health import write_health_page
from batchscore.settings import REPO_ROOT
from tests.integration.browser import chromium, wait_for
from tests.unit.health_example import HOSTILE, month_of_health, nothing_yet

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ARTIFACTS = REPO_ROOT / "var" / "test-artifacts"
SECTIONS = ("header", "performance", "estimated-vs-realized", "calibration", "stability", "drift", "reasons")


def open_offline(driver: Any, page: Path) -> None:
    """Load the file with the browser's network emulated offline."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    driver.get(page.as_uri())
    wait_for(driver, "#reasons", timeout_s=30)


def console_problems(driver: Any) -> list[str]:
    return [
        entry["message"] for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")
    ]


def test_the_health_page_renders_offline_in_headless_chromium(tmp_path):
    from selenium.webdriver.common.by import By

    full = write_health_page(month_of_health(), tmp_path / "full")
    first_day = write_health_page(nothing_yet(), tmp_path / "first")
    with chromium(console_log=True) as driver:
        open_offline(driver, full)
        for section_id in SECTIONS:
            assert driver.find_element(By.ID, section_id).is_displayed(), section_id
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert len(charts) == 8
        for chart in charts:
            size = chart.size
            assert size["width"] >= 560 and size["height"] > 60, (chart.get_attribute("id"), size)
        dots = driver.find_elements(By.CSS_SELECTOR, "#chart-roc_auc circle.dot")
        assert len(dots) == 49 and all(dot.size["width"] > 0 for dot in dots[:5])
        cells = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#drift-table td:first-child")]
        assert cells == ["monthly_charges", HOSTILE, "tenure_months"], "a hostile name shows as text"
        assert (
            driver.find_elements(By.TAG_NAME, "img") == []
            and driver.find_elements(By.TAG_NAME, "script") == []
        )
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
        assert console_problems(driver) == []
        shot = tmp_path / "health.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 30_000, "a drawn page, not a blank"

        open_offline(driver, first_day)
        empty = driver.find_elements(By.CSS_SELECTOR, "p.empty")
        assert len(empty) == 6 and all(p.is_displayed() for p in empty)
        assert "reason codes not enabled" in empty[-1].text
        assert console_problems(driver) == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "health-page.png")
    shutil.copy(full, ARTIFACTS / "health-page.html")
