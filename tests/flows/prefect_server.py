"""A real Prefect server and a serving process on loopback, for serving tests.

The server gets its own Prefect home, a free port and short waits (runs
queued behind the concurrency limit retry after one second instead of
thirty; the runner polls every second), so a test is not paced by
production intervals.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import DeploymentStatus
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.serve import api_url, start_server, stop_server, wait_for_server
from tests.flows.repo_copy import BIN

READY = DeploymentStatus.READY
FAST_SERVER = {
    "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """Run ``prefect server start`` on a free loopback port; yield its API URL."""
    port = free_port()
    url = api_url(port)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAST_SERVER.items():
            patch.setenv(name, value)
        server = start_server(home, port)
    try:
        wait_for_server(url, server)
        yield url
    finally:
        stop_server(server)


@contextlib.contextmanager
def api_client(url: str) -> Iterator[SyncPrefectClient]:
    """A synchronous Prefect client talking to the server at ``url``."""
    with (
        temporary_settings(updates={PREFECT_API_URL: url}),
        get_client(sync_client=True) as client,
    ):
        yield client


def serving_environment(repo: Path, url: str | None) -> dict[str, str]:
    """Environment of a ``laterality serve`` process in a repository copy."""
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env |= {
        "PATH": os.pathsep.join([str(BIN), env["PATH"]]),
        "PREFECT_HOME": str(repo / ".prefect"),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "LATERALITY_SALT_FILE": str(repo / ".laterality" / "salt"),
        **({"PREFECT_API_URL": url} if url else {}),
    }
    return env


def start_serving(repo: Path, url: str | None, *options: str) -> subprocess.Popen:
    """Start ``laterality serve`` in ``repo`` as the leader of its own session."""
    log = (repo / "serve.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "serve", *options],
        cwd=repo,
        env=serving_environment(repo, url),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for_deployment(url: str, name: str, process: subprocess.Popen) -> None:
    """Wait until deployment ``name`` exists and its runner polls for runs."""
    deadline = time.monotonic() + 120
    with api_client(url) as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the serving process exited early"
            with contextlib.suppress(ObjectNotFound, httpx.HTTPError):
                if client.read_deployment_by_name(name).status == READY:
                    return
            time.sleep(0.5)
    raise AssertionError(f"deployment {name} was not served on {url} in 120 s")


def kill_tree(process: psutil.Process) -> None:
    """SIGKILL a process and every process below it, as a crash would."""
    family = [process, *process.children(recursive=True)]
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(family, timeout=10)


def stop_serving(process: subprocess.Popen) -> None:
    """Stop a serving process and its children, whatever state they are in."""
    if process.poll() is None:
        kill_tree(psutil.Process(process.pid))
    process.wait()
