"""Run Airflow 3 as services (api-server, scheduler, dag-processor, triggerer) for the UI and backfills.

`make airflow` calls `start`, `make airflow-stop` calls `stop`. Each component runs in its own
process group with a pid file under `<AIRFLOW_HOME>/run/`, so `stop` ends exactly what `start`
started. SQLite metadata by default; `BATCHSCORE_AIRFLOW_DB_URL=postgresql+psycopg://...`
switches to PostgreSQL (sync and async engines both on psycopg 3) with LocalExecutor, and
`BATCHSCORE_AIRFLOW_EXECUTOR=CeleryExecutor` adds a Celery worker.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from batchscore.orchestration.airflow_run import airflow_environment
from batchscore.settings import AirflowServerSettings, ConfigError, load_airflow_server, load_platform

SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN_USER = "admin"


class AirflowStartError(RuntimeError):
    """A component exited or the API did not become healthy; the message carries its log tail."""


def async_db_url(url: str) -> str:
    """The async engine's URL for a sync metadata URL (psycopg 3 does both; Airflow defaults to asyncpg)."""
    scheme, rest = url.split("://", 1)
    if scheme.startswith("postgresql"):
        return f"postgresql+psycopg_async://{rest}"
    if scheme.startswith("sqlite"):
        return f"sqlite+aiosqlite://{rest}"
    return url


def _secrets(home: Path) -> dict[str, str]:
    """JWT and API secrets shared by every component; generated once per AIRFLOW_HOME."""
    path = home / "batchscore-secrets.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    values = {"jwt_secret": secrets.token_urlsafe(32), "secret_key": secrets.token_urlsafe(32)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(values))
    return values


def server_environment(server: AirflowServerSettings) -> dict[str, str]:
    """The AIRFLOW__* settings every component of this deployment shares."""
    platform = load_platform()
    home = server.home
    url = f"http://127.0.0.1:{server.port}"
    shared = _secrets(home)
    env = {
        **airflow_environment(platform.home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__CORE__EXECUTOR": server.executor,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(server.port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__SECRET_KEY": shared["secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": shared["jwt_secret"],
        "AIRFLOW__API_AUTH__JWT_ISSUER": "batchscore",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(server.port + 1),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(server.port + 3),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(server.port + 2),
    }
    db_url = server.db_url or f"sqlite:///{home / 'airflow.db'}"
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = db_url
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = async_db_url(db_url)
    if server.executor == "CeleryExecutor":
        env["AIRFLOW__CELERY__BROKER_URL"] = server.celery_broker_url
        env["AIRFLOW__CELERY__RESULT_BACKEND"] = server.celery_result_backend or f"db+{db_url}"
        env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = "2"
    return env


def components(server: AirflowServerSettings, wanted: Sequence[str] = SERVICES) -> list[str]:
    extra = ["celery-worker"] if server.executor == "CeleryExecutor" else []
    return [*wanted, *extra]


def _command(component: str, port: int) -> list[str]:
    airflow = str(Path(sys.executable).with_name("airflow"))
    if component == "api-server":
        return [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)]
    if component == "celery-worker":
        return [airflow, "celery", "worker", "--concurrency", "2"]
    return [airflow, component]


def run_dir(home: Path) -> Path:
    return home / "run"


def migrate(env: Mapping[str, str]) -> None:
    """Create or upgrade the metadata database (idempotent)."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise AirflowStartError(
            f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )


def running(home: Path) -> dict[str, int]:
    """Components started by `start` whose processes are still alive."""
    alive = {}
    for pid_file in sorted(run_dir(home).glob("*.pid")):
        pid = _read_pid(pid_file)
        if pid and _is_ours(pid):
            alive[pid_file.stem] = pid
    return alive


def _read_pid(pid_file: Path) -> int:
    try:
        return int(pid_file.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _is_ours(pid: int) -> bool:
    """True when `pid` is alive and still leads the process group `start` gave it (not a reused pid)."""
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def start(
    server: AirflowServerSettings,
    wanted: Sequence[str] = SERVICES,
    extra_env: Mapping[str, str] | None = None,
    timeout_s: float = 240,
) -> dict[str, int]:
    """Migrate the metadata DB, start the components in the background and wait for a healthy API."""
    home = server.home
    env = {**os.environ, **server_environment(server), **(extra_env or {})}
    if already := running(home):
        raise AirflowStartError(f"Airflow already runs from {home}: {already}; `make airflow-stop` first")
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    run_dir(home).mkdir(exist_ok=True)
    migrate(env)
    pids: dict[str, int] = {}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for component in components(server, wanted):
            log = (home / "logs" / f"{component}.out").open("ab")
            process = subprocess.Popen(
                _command(component, server.port),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() ends it and its children
                cwd=str(home),
            )
            log.close()
            processes[component] = process
            pids[component] = process.pid
            (run_dir(home) / f"{component}.pid").write_text(str(process.pid))
        if "api-server" in pids:
            wait_healthy(server, processes, timeout_s)
        time.sleep(3)  # a component that fails on start (bad config, missing provider) shows it now
        for component, process in processes.items():
            if process.poll() is not None:
                raise AirflowStartError(f"{component} exited:\n{log_tail(home, component)}")
    except BaseException:
        stop(home)
        raise
    return pids


def wait_healthy(
    server: AirflowServerSettings, processes: Mapping[str, subprocess.Popen[bytes]], timeout_s: float
) -> None:
    url = f"http://127.0.0.1:{server.port}/api/v2/monitor/health"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for component, process in processes.items():
            if process.poll() is not None:
                raise AirflowStartError(f"{component} exited:\n{log_tail(server.home, component)}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=5) as response,
        ):
            if response.status == 200:
                return
        time.sleep(1)
    raise AirflowStartError(
        f"no healthy API at {url} after {timeout_s:.0f}s:\n{log_tail(server.home, 'api-server')}"
    )


def log_tail(home: Path, component: str, chars: int = 4000) -> str:
    path = home / "logs" / f"{component}.out"
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def stop(home: Path, grace_s: float = 30) -> list[str]:
    """Stop every component `start` recorded under `home` (SIGTERM its group, SIGKILL after grace)."""
    stopped = []
    for pid_file in sorted(run_dir(home).glob("*.pid")):
        pid = _read_pid(pid_file)
        if pid and _is_ours(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            stopped.append(pid_file.stem)
    deadline = time.monotonic() + grace_s
    for pid_file in sorted(run_dir(home).glob("*.pid")):
        pid = _read_pid(pid_file)
        if pid and not _gone_by(pid, deadline):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _gone_by(pid, time.monotonic() + 10)
        pid_file.unlink(missing_ok=True)
    return stopped


def _gone_by(pgid: int, deadline: float) -> bool:
    """Wait until group `pgid` has ended or `deadline` (monotonic) passes; True when it ended."""
    while _group_alive(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _group_alive(pgid: int) -> bool:
    """True while a process of group `pgid` still runs; zombies do not count.

    A killed component is a zombie until whoever adopted it reaps it, and a container's PID 1 may
    never do so: waiting on `kill(0)` alone would then see a dead group as alive.
    """
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)  # reap the leader when it is our own child
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    states = process_states(pgid)
    return states is None or any(state not in "ZX" for state in states.values())


def process_states(pgid: int) -> dict[int, str] | None:
    """State letter (R, S, Z, ...) of each process in group `pgid`, from /proc; None without /proc."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    states = {}
    for stat in proc.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)"
            if int(fields[2]) == pgid:
                states[int(stat.parent.name)] = fields[0]
    return states


def passwords_file(home: Path) -> Path:
    """Where the simple auth manager keeps (and on first start generates) the admin password."""
    return home / "simple_auth_manager_passwords.json.generated"


def admin_password(home: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError, KeyError):
        return str(json.loads(passwords_file(home).read_text())[ADMIN_USER])
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m batchscore.orchestration.airflow_server", description=__doc__
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--components", nargs="+", default=list(SERVICES), choices=SERVICES)
    args = parser.parse_args(argv)
    try:
        server = load_airflow_server()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.action == "stop":
        stopped = stop(server.home)
        print(f"stopped {', '.join(stopped)}" if stopped else f"nothing running from {server.home}")
        return 0
    if args.action == "status":
        alive = running(server.home)
        print(json.dumps(alive) if alive else f"nothing running from {server.home}")
        return 0 if alive else 1
    database = (server.db_url or "sqlite").split("://")[0]
    print(
        f"Starting Airflow ({', '.join(components(server, args.components))}; {server.executor}, {database})"
    )
    try:
        start(server, args.components)
    except AirflowStartError as exc:
        print(f"Airflow did not start: {exc}", file=sys.stderr)
        return 1
    password = admin_password(server.home)
    print(f"Airflow UI: http://127.0.0.1:{server.port}")
    print(f"Log in as {ADMIN_USER!r} with password {password!r}")
    print(f"  (simple auth manager; the password is kept in {passwords_file(server.home)})")
    print(f"Logs: {server.home}/logs/*.out   Stop: make airflow-stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
