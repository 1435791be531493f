"""Headless Chromium (Debian's `chromium` + `chromedriver`) driven by Selenium, for the Airflow UI."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@contextmanager
def chromium(console_log: bool = False) -> Iterator[Any]:
    """A headless Chromium session; with `console_log`, `driver.get_log("browser")` returns the
    page's console messages (CSP violations and script errors among them)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1600,2000",
    ):
        options.add_argument(arg)
    if console_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, css: str, timeout_s: float = 60) -> list[Any]:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        if found:
            return list(found)
        time.sleep(0.25)
    raise AssertionError(f"{css!r} did not appear on {driver.current_url} within {timeout_s}s")


def log_in(driver: Any, base_url: str, username: str, password: str) -> None:
    """Sign in through the simple auth manager's login form."""
    from selenium.webdriver.common.by import By

    driver.get(base_url + "/")
    wait_for(driver, "input[name=username]")
    assert "/auth/login" in driver.current_url, driver.current_url
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, "[data-testid=nav-dags-link]")


def task_tooltip(driver: Any, cell_css: str, task_id: str, timeout_s: float = 30) -> str:
    """Hover a grid cell and return its tooltip ("Task ID: ...\\nState: Success\\n...").

    The cell is looked up afresh on every try (the grid re-renders while it refreshes) and
    the hover is repeated (away, then back) until the cell's own tooltip shows.
    """
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            cell = driver.find_element(By.CSS_SELECTOR, cell_css)
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", cell)
            ActionChains(driver).move_to_element_with_offset(cell, 0, -40).perform()
            ActionChains(driver).move_to_element(cell).perform()
        except StaleElementReferenceException:
            continue
        hover_until = min(deadline, time.monotonic() + 3)
        while time.monotonic() < hover_until:
            try:
                for tip in driver.find_elements(By.CSS_SELECTOR, "[data-scope=tooltip][data-part=content]"):
                    text = str(tip.text)
                    if f"Task ID: {task_id}\n" in text:
                        return text
            except StaleElementReferenceException:
                pass
            time.sleep(0.1)
    raise AssertionError(f"no tooltip for {task_id}")


def successful_runs_in_grid(
    driver: Any, base_url: str, dag_id: str, expected: int, checked: frozenset[str]
) -> list[str]:
    """Open the DAG's grid; return the runs whose cells for the `checked` tasks have a tooltip
    saying `State: Success`."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    driver.get(f"{base_url}/dags/{dag_id}")
    wait_for(driver, "[data-testid=grid-view-button]")
    deadline = time.monotonic() + 60
    while True:
        cells = wait_for(driver, "div[data-run-id][data-task-id] a[data-testid^='grid-']")
        try:
            runs = {
                c.get_attribute("data-run-id")
                for c in driver.find_elements(By.CSS_SELECTOR, "div[data-run-id][data-task-id]")
            }
        except StaleElementReferenceException:  # the grid re-rendered while we read it
            assert time.monotonic() < deadline, "the grid kept re-rendering"
            continue
        if len(runs) >= expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    successful = []
    for run_id in sorted(runs):
        states = []
        for task_id in sorted(checked):
            cell_css = f"div[data-run-id='{run_id}'][data-task-id='{task_id}'] a[data-testid^='grid-']"
            states.append("State: Success" in task_tooltip(driver, cell_css, task_id))
        if states and all(states):
            successful.append(run_id)
    assert cells
    return successful
