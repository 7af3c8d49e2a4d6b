"""Scheduled retraining on a real Prefect server, end to end.

One repository copy, one ``prefect server start`` on a free loopback port and
one ``laterality serve`` process; runs are triggered with ``run_deployment``:

1. the first run finds every image new and registers v0.0.1 in ``prod``;
2. a second run finds no new data and trains nothing;
3. new images arrive; a run is SIGKILLed, with its DVC and training
   processes, while it trains (after at least one epoch was backed up);
4. two runs are triggered together: they run one after the other, one
   resumes the killed training and registers v0.0.2, the other finds nothing
   new.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import numpy as np
import psutil
import pytest
from PIL import Image
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.serve import DEPLOYMENT, FLOW
from tests.flows.prefect_server import (
    api_client,
    kill_tree,
    prefect_server,
    start_serving,
    stop_serving,
    wait_for_deployment,
)
from tests.flows.repo_copy import MODEL, new_pipeline_repo, run
from tests.synthetic import draw_view

pytestmark = pytest.mark.slow
NAME = f"{FLOW}/{DEPLOYMENT}"
RUN_TIMEOUT_S = 300


@dataclass(frozen=True)
class Served:
    """A repository copy whose retraining deployment is being served."""

    repo: Path
    url: str
    serving: psutil.Process


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    repo = new_pipeline_repo(tmp_path_factory.mktemp("retraining"))
    with prefect_server(tmp_path_factory.mktemp("prefect-home")) as url:
        serving = start_serving(repo, url)
        try:
            wait_for_deployment(url, NAME, serving)
            yield Served(repo, url, psutil.Process(serving.pid))
        finally:
            stop_serving(serving)


def trigger(served: Served) -> UUID:
    """Create a run of the deployment now, without waiting for it."""
    with temporary_settings(updates={PREFECT_API_URL: served.url}):
        return run_deployment(NAME, timeout=0, as_subflow=False).id


def wait_for_runs(served: Served, *ids: UUID) -> list[FlowRun]:
    """Wait until every run in ``ids`` is in a final state; return them."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    with api_client(served.url) as client:
        while time.monotonic() < deadline:
            runs = [client.read_flow_run(run_id) for run_id in ids]
            if all(r.state and r.state.is_final() for r in runs):
                return runs
            time.sleep(0.5)
    raise AssertionError(f"runs {ids} did not finish in {RUN_TIMEOUT_S} s")


def subflow_runs(served: Served, parent: UUID) -> list[FlowRun]:
    with api_client(served.url) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])
            )
        )


def task_names(served: Served, run_id: UUID) -> set[str]:
    with api_client(served.url) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    return {task.name.rsplit("-", 1)[0] for task in tasks}


def log_lines(served: Served, run_id: UUID, containing: str) -> list[str]:
    with api_client(served.url) as client:
        logs = client.read_logs(
            LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[run_id]),
                text={"query": containing},
            )
        )
    return [entry.message for entry in logs]


def state_names(served: Served, run_id: UUID) -> list[str]:
    with api_client(served.url) as client:
        return [state.name for state in client.read_flow_run_states(run_id)]


def registry_state(repo: Path) -> tuple[str, list[str]]:
    """HEAD and every registry tag (versions and stage assignments)."""
    head = run(repo, "git", "rev-parse", "HEAD").stdout.strip()
    return head, sorted(run(repo, "git", "tag", "--list").stdout.split())


def add_images(repo: Path, per_view: int = 10) -> None:
    """Drop new radiographs into the source, as a new export would."""
    source = repo / "data" / "synthetic"
    rng = np.random.default_rng(11)
    with (source / "manifest.csv").open("a", newline="") as handle:
        writer = csv.writer(handle)
        for view in ("frontal", "lateral"):
            for index in range(per_view):
                relative = f"{view}/arrived-{index:02d}.png"
                Image.fromarray(draw_view(view, 64, rng)).save(source / relative)
                writer.writerow([relative, view, f"{view}-patient-new-{index // 2}"])


def corrupt_cache_objects(repo: Path) -> list[str]:
    """List DVC cache objects whose content no longer matches their name."""
    bad = []
    for path in (repo / ".dvc" / "cache" / "files" / "md5").glob("*/*"):
        expected = path.parent.name + path.name.removesuffix(".dir")
        if hashlib.md5(path.read_bytes()).hexdigest() != expected:
            bad.append(str(path))
    return bad


def command_line(process: psutil.Process) -> str:
    """The command line of ``process``; empty once it has exited."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def alive(process: psutil.Process) -> bool:
    """Whether ``process`` still runs (a zombie has exited)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def find_trainer(served: Served, deadline: float) -> psutil.Process:
    """Wait for the ``python -m tasks.train`` process below the serving one."""
    while time.monotonic() < deadline:
        for child in served.serving.children(recursive=True):
            if "tasks.train" in command_line(child):
                return child
        time.sleep(0.05)
    raise AssertionError("training never started")


def kill_during_training(served: Served) -> UUID:
    """Trigger a run and SIGKILL it, DVC and Keras included, mid-training.

    The kill comes once an epoch is backed up, so the next run can resume.
    """
    run_id = trigger(served)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    trainer = find_trainer(served, deadline)
    backups = served.repo / ".laterality" / "backup"
    while not any(backups.rglob("state.json")):
        assert alive(trainer), "training ended before an epoch was backed up"
        assert time.monotonic() < deadline, "no epoch was backed up in time"
        time.sleep(0.02)
    flow_process = trainer
    while flow_process.ppid() != served.serving.pid:
        flow_process = psutil.Process(flow_process.ppid())
    kill_tree(flow_process)
    return run_id


@pytest.fixture(scope="module")
def history(served: Served) -> dict[str, object]:
    """Run the scenario of the module docstring and record what happened."""
    repo = served.repo
    first = wait_for_runs(served, trigger(served))[0]
    after_first = registry_state(repo)

    unchanged = wait_for_runs(served, trigger(served))[0]
    after_unchanged = registry_state(repo)

    add_images(repo)
    killed = wait_for_runs(served, kill_during_training(served))[0]
    after_kill = registry_state(repo)
    lineage = run(repo, "laterality", "lineage", "v0.0.1", check=False)
    corrupt = corrupt_cache_objects(repo)

    pair = wait_for_runs(served, trigger(served), trigger(served))
    return {
        "first": first,
        "unchanged": unchanged,
        "killed": killed,
        "pair": pair,
        "registry": (after_first, after_unchanged, after_kill, registry_state(repo)),
        "lineage_after_kill": lineage,
        "corrupt_after_kill": corrupt,
    }


def test_deployment_is_scheduled_from_params_with_one_run_at_a_time(served: Served):
    with api_client(served.url) as client:
        deployment = client.read_deployment_by_name(NAME)
    schedule = deployment.schedules[0].schedule
    assert (schedule.cron, schedule.timezone) == ("0 2 * * 1", "UTC")
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.parameters == {"repo": str(served.repo)}


def test_first_run_registers_a_version_in_prod(served: Served, history):
    assert history["first"].state.is_completed()
    _, tags = history["registry"][0]
    assert tags == [f"{MODEL}#prod#1", f"{MODEL}@v0.0.1"]
    [training] = subflow_runs(served, history["first"].id)
    assert training.flow_id != history["first"].flow_id
    assert training.state.is_completed()


def test_run_without_new_data_trains_and_registers_nothing(served: Served, history):
    unchanged = history["unchanged"]
    assert unchanged.state.is_completed()
    assert history["registry"][1] == history["registry"][0]
    assert task_names(served, unchanged.id) == {
        "hash_source",
        "read_registered_dataset",
    }
    assert subflow_runs(served, unchanged.id) == []
    assert log_lines(served, unchanged.id, "no new data since v0.0.1")
    assert unchanged.total_run_time.total_seconds() < 20


def test_run_killed_during_training_leaves_registry_and_cache_intact(history):
    assert history["killed"].state.is_crashed()
    assert history["registry"][2] == history["registry"][1]
    assert "verified: weights, data and split match dvc.lock" in (
        history["lineage_after_kill"].stdout
    )
    assert history["corrupt_after_kill"] == []


def test_runs_triggered_together_never_overlap(served: Served, history):
    earlier, later = sorted(history["pair"], key=lambda r: r.start_time)
    assert earlier.state.is_completed()
    assert later.state.is_completed()
    assert earlier.end_time <= later.start_time
    waited = state_names(served, earlier.id) + state_names(served, later.id)
    assert "AwaitingConcurrencySlot" in waited


def test_run_after_the_kill_resumes_training_and_registers(served: Served, history):
    repo = served.repo
    _, tags = history["registry"][3]
    assert f"{MODEL}@v0.0.2" in tags
    retrained = [r for r in history["pair"] if subflow_runs(served, r.id)]
    quiet = [r for r in history["pair"] if not subflow_runs(served, r.id)]
    assert len(retrained) == len(quiet) == 1
    assert log_lines(served, quiet[0].id, "no new data since v0.0.2")
    [training] = subflow_runs(served, retrained[0].id)
    assert log_lines(served, training.id, "Stage 'ingest' didn't change, skipping")
    summary = json.loads((repo / "metrics" / "train.json").read_text())
    assert summary["resumed_after_epoch"]["train"] >= 1
