"""A run's metrics reach a real Prometheus: Debian's Pushgateway and Prometheus on loopback,
Prometheus scraping the Pushgateway every second, the series read back from its HTTP API.
(A whole DagRun's push is checked in test_pii_e2e.py, on the same servers.)"""

from __future__ import annotations

import pytest

from batchscore.telemetry.metrics import push_run_metrics
from tests.integration.prometheus_servers import PROMETHEUS, PUSHGATEWAY, query, wait_until

pytestmark = pytest.mark.skipif(
    PUSHGATEWAY is None or PROMETHEUS is None, reason="prometheus servers missing: run `make tools`"
)


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
