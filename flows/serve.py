"""Schedule the ``retraining`` flow on a Prefect server and run it when due.

Prefect refuses schedules on its ephemeral API, so ``laterality serve`` needs
a real server: the one ``PREFECT_API_URL`` names, or, with ``--start-server``,
one it starts itself on loopback with the project's own Prefect home (SQLite
in ``.prefect/`` unless ``PREFECT_API_DATABASE_CONNECTION_URL`` says
otherwise). The deployment carries the cron schedule and time zone of the
``schedule`` section in ``params.yaml`` and a concurrency limit of one run:
a run that comes due while another is active waits in
``AwaitingConcurrencySlot`` until the first one ends.

On Ctrl-C (or SIGTERM) the serving process pauses the schedule while the
server can still be told, then stops the server it started. The server runs
in its own session, so the terminal's Ctrl-C reaches only this process and the
order holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from prefect import serve
from prefect.client.schemas.objects import (
    ConcurrencyLimitConfig,
    ConcurrencyLimitStrategy,
)
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron, Schedule
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

from flows.retraining import retraining
from tasks.config import ScheduleParams, load_params

log = logging.getLogger(__name__)

DEPLOYMENT = "scheduled"
FLOW = "retraining"
HOST = "127.0.0.1"
DEFAULT_PORT = 4200
SERVER_LOG = "server.log"
START_TIMEOUT_S = 180.0  # a first start migrates the database; slow on 2 cores
STOP_TIMEOUT_S = 30.0


def build_schedule(settings: ScheduleParams) -> Schedule:
    """Turn the ``schedule`` section into a Prefect cron schedule.

    Raises:
        ValueError: the cron string or the time zone is not valid.
    """
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(
            "schedule.timezone: expected an IANA time zone such as UTC or "
            f"Europe/Berlin, got '{settings.timezone}'"
        ) from error
    try:
        return Cron(settings.cron, timezone=settings.timezone)
    except ValueError as error:
        raise ValueError(
            "schedule.cron: expected five cron fields such as '0 2 * * 1' "
            f"(Mondays 02:00), got '{settings.cron}'"
        ) from error


def build_deployment(repo: Path, settings: ScheduleParams) -> RunnerDeployment:
    """Describe the ``retraining/scheduled`` deployment for ``repo``."""
    return retraining.to_deployment(
        name=DEPLOYMENT,
        schedules=[build_schedule(settings)],
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
        ),
        parameters={"repo": str(repo.resolve())},
        description=f"Retrain {repo.resolve().name} when its source has new images",
        tags=["xray-laterality"],
    )


def api_url(port: int, host: str = HOST) -> str:
    """Return the API address of a server listening on ``host:port``."""
    return f"http://{host}:{port}/api"


def prefect_home(repo: Path) -> Path:
    """Return ``PREFECT_HOME`` if set, else the project's ``.prefect`` folder."""
    return Path(os.environ.get("PREFECT_HOME") or repo / ".prefect").resolve()


def check_port_free(port: int, host: str = HOST) -> None:
    """Refuse a port something already listens on, such as an older server.

    Raises:
        ValueError: a connection to ``host:port`` succeeds.
    """
    with contextlib.suppress(OSError), socket.create_connection((host, port), 1):
        raise ValueError(
            f"--port: expected a free port, but {host}:{port} is taken; pass "
            "another --port (PREFECT_PORT=... make serve), or serve against the "
            f"server there with PREFECT_API_URL={api_url(port, host)} and no "
            "--start-server"
        )


def start_server(home: Path, port: int, host: str = HOST) -> subprocess.Popen:
    """Start ``prefect server start`` in its own session, logging to ``home``.

    Returns at once; :func:`wait_for_server` tells when it answers.
    """
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env |= {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    command = [sys.executable, "-m", "prefect", "server", "start"]
    with (home / SERVER_LOG).open("a") as server_log:
        return subprocess.Popen(
            [*command, "--host", host, "--port", str(port)],
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_for_server(
    url: str, process: subprocess.Popen | None, timeout_s: float = START_TIMEOUT_S
) -> None:
    """Poll ``url/health`` until the server answers.

    Raises:
        RuntimeError: the server process exited, or did not answer in time.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"Prefect server: exited with code {process.returncode} before "
                f"answering at {url} (is the port taken? see its {SERVER_LOG})"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"Prefect server: no answer at {url} within {timeout_s:.0f} s")


def stop_server(process: subprocess.Popen, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop a server from :func:`start_server`: SIGTERM, then SIGKILL."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("Prefect server: no exit %.0f s after SIGTERM", timeout_s)
            process.kill()
            process.wait()


@contextlib.contextmanager
def interrupted_by_signals() -> Iterator[None]:
    """Let Ctrl-C and SIGTERM unwind, so a started server is always stopped.

    SIGINT is set explicitly because a process started in the background of
    a script inherits it ignored, and would then not stop on Ctrl-C.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
        signal.SIGTERM: signal.signal(signal.SIGTERM, interrupt),
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def serve_deployment(repo: Path, settings: ScheduleParams, url: str) -> None:
    """Create or update the deployment on ``url`` and run its flow runs."""
    deployment = build_deployment(repo, settings)
    log.info(
        "serving %s/%s on %s: cron '%s' (%s), one run at a time",
        FLOW,
        DEPLOYMENT,
        url,
        settings.cron,
        settings.timezone,
    )
    with temporary_settings(updates={PREFECT_API_URL: url}):
        serve(deployment)


def configured_api_url() -> str:
    """Return ``PREFECT_API_URL``, refusing the ephemeral API that has none.

    Raises:
        ValueError: ``PREFECT_API_URL`` is not set.
    """
    url = get_current_settings().api.url
    if not url:
        raise ValueError(
            "PREFECT_API_URL: expected the address of a running Prefect server "
            f"(for example {api_url(DEFAULT_PORT)}), got nothing; Prefect cannot "
            "schedule on its ephemeral API. Pass --start-server to start one, or "
            "use `make serve`"
        )
    return url


def serve_project(repo: Path, start: bool, port: int = DEFAULT_PORT) -> int:
    """Serve ``repo``'s retraining deployment until Ctrl-C; 0 on a clean stop.

    Args:
        start: start a Prefect server on ``127.0.0.1:port`` first, and stop it
            on the way out; otherwise use the one ``PREFECT_API_URL`` names.
    """
    settings = load_params(repo / "params.yaml").schedule
    build_schedule(settings)  # refuse a bad schedule before starting anything
    server = None
    with interrupted_by_signals():
        try:
            if start:
                check_port_free(port)
                url = api_url(port)
                home = prefect_home(repo)
                server = start_server(home, port)
                log.info("Prefect server starting: %s (log %s)", url, home / SERVER_LOG)
                wait_for_server(url, server)
                log.info("Prefect UI: %s", url.removesuffix("/api"))
            else:
                url = configured_api_url()
                wait_for_server(url, None, timeout_s=10)
            serve_deployment(repo, settings, url)
        except KeyboardInterrupt:
            log.info("interrupted")
        finally:
            if server is not None:
                log.info("stopping the Prefect server (pid %d)", server.pid)
                stop_server(server)
    return 0
