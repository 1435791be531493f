"""Alerts: always logged; also POSTed as JSON to a webhook when one is configured."""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

log = logging.getLogger("batchscore.telemetry.alerts")


def send_alert(webhook: str | None, subject: str, details: dict[str, Any]) -> bool:
    """Log the alert and deliver it to the webhook; returns whether the webhook accepted it."""
    log.warning("ALERT %s %s", subject, json.dumps(details, default=str, sort_keys=True))
    if not webhook:
        return False
    body = json.dumps({"subject": subject, "details": details}, default=str).encode()
    request = urllib.request.Request(webhook, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return 200 <= response.status < 300
    except OSError as exc:
        log.error("alert webhook %s failed: %s", webhook, exc)
        return False
