"""Airflow conventions of the nightly DAGs beyond tests/test_dags.py: the schedule comes from the
pipeline YAML, retries back off, every task alerts on failure, and the alert hook delivers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from batchscore.settings import REPO_ROOT, discover_pipelines
from batchscore.telemetry.alerts import send_alert

PROBE = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {}
for dag_id, dag in bag.dags.items():
    out[dag_id] = {
        "schedule": str(dag.schedule),
        "start_date": dag.start_date.isoformat(),
        "tags": sorted(dag.tags),
        "doc_md": dag.doc_md,
        "params": {k: dag.params.get_param(k).schema for k in dag.params.keys()},
        "deadlines": [a.interval.total_seconds() for a in (dag.deadline or [])],
        "tasks": {
            t.task_id: {
                "backoff": bool(t.retry_exponential_backoff),
                "retry_delay_s": t.retry_delay.total_seconds(),
                "timeout_s": t.execution_timeout.total_seconds() if t.execution_timeout else None,
                "on_failure": [f"{c.__module__}.{c.__name__}" for c in (t.on_failure_callback or [])]
                if isinstance(t.on_failure_callback, list)
                else [f"{t.on_failure_callback.__module__}.{t.on_failure_callback.__name__}"],
                "owner": t.owner,
            }
            for t in dag.tasks
        },
    }
print(json.dumps(out))
"""


def probe(tmp_path: Path) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "BATCHSCORE_LAKE_URL": str(tmp_path / "lake"),
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO_ROOT / "dags")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_schedule_retries_timeouts_and_alerts_come_from_the_pipeline_yaml(tmp_path):
    dags = probe(tmp_path)
    for pipeline in discover_pipelines({}):
        dag = dags[pipeline.dag_id]
        assert dag["schedule"] == pipeline.schedule.cron
        assert dag["start_date"].startswith(pipeline.schedule.start_date.isoformat())
        assert set(pipeline.tags) <= set(dag["tags"])
        assert pipeline.description in dag["doc_md"] and "Backfill" in dag["doc_md"]
        assert dag["params"]["model_version"]["type"] == ["null", "integer"]
        # a publish_by deadline becomes an Airflow deadline alert (hours from the logical date)
        assert len(dag["deadlines"]) == (pipeline.schedule.publish_by is not None)
        for task_id, task in dag["tasks"].items():
            assert task["backoff"], f"{task_id}: retries back off exponentially"
            assert task["retry_delay_s"] == pipeline.schedule.retry_delay_s
            assert task["timeout_s"] == pipeline.schedule.execution_timeout_s
            assert task["on_failure"] == ["batchscore.orchestration.task_support.record_failure"], task_id
            assert task["owner"] == pipeline.owner
        # a failed retrain records and alerts like a failed nightly run
        for task_id, task in dags[pipeline.retrain_dag_id]["tasks"].items():
            assert task["on_failure"] == ["batchscore.orchestration.task_support.record_failure"], task_id
            assert task["owner"] == pipeline.owner


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append({"content_type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_the_alert_hook_logs_and_posts_to_the_webhook(caplog):
    server = HTTPServer(("127.0.0.1", 18085), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        delivered = send_alert(
            "http://127.0.0.1:18085/hook", "batchscore churn: task failed", {"run_id": "r1"}
        )
    finally:
        server.shutdown()
        server.server_close()
    assert delivered is True
    assert _Hook.received == [
        {
            "content_type": "application/json",
            "body": {"subject": "batchscore churn: task failed", "details": {"run_id": "r1"}},
        }
    ]
    assert "ALERT batchscore churn: task failed" in caplog.text


def test_an_unreachable_webhook_is_logged_not_raised(caplog):
    assert send_alert("http://127.0.0.1:18086/nobody-listens", "subject", {}) is False
    assert "alert webhook http://127.0.0.1:18086/nobody-listens failed" in caplog.text
