"""Debian's Pushgateway and Prometheus on loopback (Prometheus scraping the gateway every
second), and reading series back from Prometheus' HTTP API. The fixture is in conftest.py."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PUSHGATEWAY = shutil.which("prometheus-pushgateway")
PROMETHEUS = shutil.which("prometheus")


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


@contextmanager
def prometheus_servers(tmp: Path) -> Iterator[tuple[str, str]]:
    """(Pushgateway URL, Prometheus URL), both stopped on exit."""
    if PUSHGATEWAY is None or PROMETHEUS is None:
        raise RuntimeError("prometheus and prometheus-pushgateway are missing: run `make tools`")
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
