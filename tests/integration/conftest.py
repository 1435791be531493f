"""Fixtures shared by the integration tests: services started once for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.prometheus_servers import prometheus_servers
from tests.mlflow_server import NO_TELEMETRY, mlflow_server


@pytest.fixture(scope="session")
def mlflow_tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URI of one real MLflow tracking server (sqlite + served artifacts) for the session.

    The test process's mlflow client sends no telemetry while it runs.
    """
    with pytest.MonkeyPatch.context() as env, mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        for key, value in NO_TELEMETRY.items():
            env.setenv(key, value)
        yield uri


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real Pushgateway and a Prometheus scraping it: (gateway URL, Prometheus URL)."""
    with prometheus_servers(tmp_path_factory.mktemp("prometheus")) as urls:
        yield urls
