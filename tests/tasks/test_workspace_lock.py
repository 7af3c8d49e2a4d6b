"""The workspace lock: one writer per workspace, freed even by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.workspace_lock import (
    LOCK_FILE,
    WorkspaceBusyError,
    holds_workspace_lock,
    read_holder,
    workspace_lock,
)
from tests.conftest import REPO_ROOT


@pytest.fixture
def other_holder(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """Another process that holds the lock of ``tmp_path`` until killed."""
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from tasks.workspace_lock import workspace_lock
        with workspace_lock(Path({str(tmp_path)!r}), "test holder"):
            print("held", flush=True)
            time.sleep(120)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait()


def test_workspace_lock_is_reentrant_within_one_process(tmp_path: Path):
    with (
        workspace_lock(tmp_path, "outer", wait_s=0),
        workspace_lock(tmp_path, "inner", wait_s=0),
    ):
        assert "outer" in read_holder(tmp_path / LOCK_FILE)
    with workspace_lock(tmp_path, "again", wait_s=0):
        assert "again" in read_holder(tmp_path / LOCK_FILE)


def test_workspace_lock_gives_up_after_wait_s_naming_the_holder(
    tmp_path: Path, other_holder: subprocess.Popen
):
    waits: list[str] = []
    with (
        pytest.raises(WorkspaceBusyError, match=f"pid {other_holder.pid}: test holder"),
        workspace_lock(tmp_path, "second", wait_s=0.3, on_wait=waits.append),
    ):
        pass
    [wait] = waits
    assert wait.startswith(
        f"waiting for the workspace lock held by pid {other_holder.pid}: test holder"
    )


def test_workspace_lock_is_freed_when_its_holder_is_killed(
    tmp_path: Path, other_holder: subprocess.Popen
):
    os.kill(other_holder.pid, signal.SIGKILL)
    other_holder.wait()
    started = time.monotonic()
    with workspace_lock(tmp_path, "after the kill", wait_s=5, poll_s=0.05):
        assert time.monotonic() - started < 1
        assert "after the kill" in read_holder(tmp_path / LOCK_FILE)


def test_holds_workspace_lock_takes_the_lock_of_the_repo_argument(tmp_path: Path):
    @holds_workspace_lock
    def pipeline(repo: str = ".", push: bool = True) -> str:
        return read_holder(Path(repo) / LOCK_FILE)

    holder = pipeline(repo=str(tmp_path))
    assert holder.startswith(f"pid {os.getpid()}: pipeline (no flow run)")
    assert read_holder(tmp_path / LOCK_FILE) == "another process"
