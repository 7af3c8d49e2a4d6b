"""``laterality serve``: the deployment it builds, and how it starts and stops.

The last test runs ``laterality serve --start-server`` as ``make serve`` does,
on a free loopback port, and stops it the way Ctrl-C in a terminal does: a
SIGINT to its process group.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import httpx
import psutil
import pytest
from prefect.client.schemas.objects import ConcurrencyLimitStrategy
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.serve import (
    DEPLOYMENT,
    FLOW,
    build_deployment,
    build_schedule,
    serve_project,
)
from tasks.config import ScheduleParams, load_params
from tests.conftest import REPO_ROOT
from tests.flows.prefect_server import (
    api_client,
    free_port,
    start_serving,
    stop_serving,
    wait_for_deployment,
)
from tests.flows.repo_copy import copy_repository


@pytest.mark.parametrize(
    ("cron", "timezone", "message"),
    [
        ("every monday", "UTC", "schedule.cron: expected five cron fields"),
        ("0 2 * * 1", "Mars/Olympus_Mons", "schedule.timezone: expected an IANA"),
    ],
    ids=["bad-cron", "bad-timezone"],
)
def test_build_schedule_rejects_invalid_settings(cron, timezone, message):
    with pytest.raises(ValueError, match=message):
        build_schedule(ScheduleParams(cron, timezone))


def test_build_deployment_carries_schedule_limit_and_repository(tmp_path: Path):
    deployment = build_deployment(tmp_path, ScheduleParams("30 4 * * 0", "Europe/Oslo"))
    assert deployment.name == DEPLOYMENT
    assert deployment.flow_name == FLOW
    [schedule] = deployment.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == (
        "30 4 * * 0",
        "Europe/Oslo",
    )
    assert deployment.concurrency_limit == 1
    assert deployment.concurrency_options.collision_strategy == (
        ConcurrencyLimitStrategy.ENQUEUE
    )
    assert deployment.parameters == {"repo": str(tmp_path.resolve())}


def test_serve_project_without_a_server_refuses_the_ephemeral_api():
    with (
        temporary_settings(updates={PREFECT_API_URL: None}),
        pytest.raises(ValueError, match="PREFECT_API_URL: expected the address"),
    ):
        serve_project(REPO_ROOT, start=False)


def test_serve_project_refuses_a_port_that_is_taken():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=f"--port: expected a free port.*{port}"):
            serve_project(REPO_ROOT, start=True, port=port)


@pytest.mark.slow
def test_serve_with_start_server_stops_both_processes_on_ctrl_c(tmp_path: Path):
    repo = copy_repository(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    serving = start_serving(repo, None, "--start-server", "--port", str(port))
    try:
        wait_for_deployment(url, f"{FLOW}/{DEPLOYMENT}", serving)
        with api_client(url) as client:
            deployment = client.read_deployment_by_name(f"{FLOW}/{DEPLOYMENT}")
        [server] = [
            child
            for child in psutil.Process(serving.pid).children()
            if "server" in child.cmdline()
        ]
        os.killpg(serving.pid, signal.SIGINT)
        assert serving.wait(timeout=60) == 0
        psutil.wait_procs([server], timeout=30)
    finally:
        stop_serving(serving)

    settings = load_params(repo / "params.yaml").schedule
    schedule = deployment.schedules[0].schedule
    assert (schedule.cron, schedule.timezone) == (settings.cron, settings.timezone)
    assert deployment.parameters == {"repo": str(repo)}
    assert not server.is_running()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=2)
    assert (repo / ".prefect" / "prefect.db").is_file()
    log = (repo / "serve.log").read_text()
    assert "All deployments have been paused" in log
    assert "stopping the Prefect server" in log
    assert "Traceback" not in log
