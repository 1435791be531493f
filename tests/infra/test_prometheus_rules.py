"""The shipped alerting rules pass `promtool check rules` and their `promtool test rules` unit tests;
the Grafana dashboard is JSON that queries only metrics batchscore pushes (or names to come)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from batchscore.settings import REPO_ROOT

RULES = REPO_ROOT / "infra" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: run `make tools`")


@needs_promtool
@pytest.mark.parametrize("command", [["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]])
def test_promtool(command: list[str]) -> None:
    done = subprocess.run([str(PROMTOOL), *command], cwd=RULES, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_queries_batchscore_metrics() -> None:
    dashboard = json.loads((REPO_ROOT / "infra" / "grafana" / "batchscore.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert exprs and all("batchscore_" in expr for expr in exprs)
