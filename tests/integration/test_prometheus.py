"""A run's metrics reach a real Prometheus: Debian's Pushgateway and Prometheus on loopback,
Prometheus scraping the Pushgateway every second, the series read back from its HTTP API."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchscore.telemetry.metrics import push_run_metrics

PUSHGATEWAY = shutil.which("prometheus-pushgateway")
PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PUSHGATEWAY is None or PROMETHEUS is None, reason="prometheus servers missing: run `make tools`"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def wait_until(check: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = check()
            if result:
                return result
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready after {seconds}s")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp: Path = tmp_path_factory.mktemp("prometheus")
    gw_port, prom_port = free_port(), free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: pushgateway\n"
        "    honor_labels: true\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{gw_port}']}}]\n"
    )
    logs = (tmp / "pushgateway.log").open("w"), (tmp / "prometheus.log").open("w")
    procs = [
        subprocess.Popen(
            [str(PUSHGATEWAY), f"--web.listen-address=127.0.0.1:{gw_port}"], stdout=logs[0], stderr=logs[0]
        ),
        subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=logs[1],
            stderr=logs[1],
        ),
    ]
    gateway, prometheus = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{prom_port}"
    try:
        wait_until(lambda: urllib.request.urlopen(f"{gateway}/-/ready", timeout=2).status == 200, 30)
        wait_until(lambda: urllib.request.urlopen(f"{prometheus}/-/ready", timeout=2).status == 200, 30)
        yield gateway, prometheus
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        for log in logs:
            log.close()


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    body = get(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    return list(body["data"]["result"])


def test_pushed_run_appears_in_prometheus(servers: tuple[str, str]) -> None:
    gateway, prometheus = servers
    stages = [{"stage": "score", "rows": 1000, "seconds": 2.0, "cpu_seconds": 1.0}]
    gate = {"decision": "no_action", "alerted": False, "drifted_share": 0.1}
    assert push_run_metrics(gateway, "churn", stages, success=True, model_version=4, gate=gate)

    rows = wait_until(lambda: query(prometheus, 'batchscore_stage_rows{pipeline="churn"}'), 30)
    assert rows[0]["metric"]["job"] == "batchscore_nightly"
    assert rows[0]["metric"]["stage"] == "score"
    assert float(rows[0]["value"][1]) == 1000
    success = wait_until(lambda: query(prometheus, 'batchscore_run_success{pipeline="churn"}'), 30)
    assert float(success[0]["value"][1]) == 1

    # A failed run replaces the pipeline's previous push (same grouping key).
    assert push_run_metrics(gateway, "churn", [], success=False)
    wait_until(
        lambda: [
            r for r in query(prometheus, 'batchscore_run_success{pipeline="churn"}') if r["value"][1] == "0"
        ],
        30,
    )
