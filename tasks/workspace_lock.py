"""Let one pipeline run at a time write a workspace, whoever started it.

A scheduled ``retraining`` run and a ``laterality run`` typed by a person both
rebuild ``data/``, ``models/`` and ``dvc.lock`` and commit to git, so they must
never overlap. Prefect's deployment concurrency limit only sees deployment
runs; this lock also sees CLI runs. It is an ``flock`` on
``.laterality/workspace.lock``: the kernel drops it when its holder dies, even
by SIGKILL, so a killed run never leaves a stale lock behind. The holder writes
its pid, a description and its start time into the file, so a waiting run can
say whom it waits for.

The lock is re-entrant within one process: the ``retraining`` flow holds it
and then calls ``training-pipeline`` as a subflow, which takes it again.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import inspect
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

log = logging.getLogger(__name__)

LOCK_FILE = Path(".laterality/workspace.lock")
WAIT_S = 3 * 3600.0  # longer than a full retrain on the bundled data
REPORT_EVERY_S = 60.0

_held: dict[Path, int] = {}
_held_guard = threading.Lock()

Arguments = ParamSpec("Arguments")
Result = TypeVar("Result")


class WorkspaceBusyError(RuntimeError):
    """Another run held the workspace for longer than this run would wait."""


@contextlib.contextmanager
def workspace_lock(
    repo: Path,
    holder: str,
    wait_s: float = WAIT_S,
    on_wait: Callable[[str], None] = log.warning,
    poll_s: float = 0.5,
) -> Iterator[None]:
    """Hold the workspace lock of ``repo``, waiting up to ``wait_s`` for it.

    Args:
        holder: what takes the lock (a flow run, a command), shown to waiters.
        on_wait: receives one line when waiting starts and every minute after.

    Raises:
        WorkspaceBusyError: the lock was still held after ``wait_s`` seconds.
    """
    path = (repo / LOCK_FILE).resolve()
    if _enter_again(path):
        try:
            yield
        finally:
            _leave(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(descriptor, path, wait_s, on_wait, poll_s)
        _write_holder(descriptor, holder)
        with _held_guard:
            _held[path] = 1
        try:
            yield
        finally:
            with _held_guard:
                del _held[path]
            os.ftruncate(descriptor, 0)
    finally:
        os.close(descriptor)  # closing the descriptor releases the flock


def _enter_again(path: Path) -> bool:
    with _held_guard:
        if path not in _held:
            return False
        _held[path] += 1
        return True


def _leave(path: Path) -> None:
    with _held_guard:
        _held[path] -= 1


def _acquire(
    descriptor: int,
    path: Path,
    wait_s: float,
    on_wait: Callable[[str], None],
    poll_s: float,
) -> None:
    """Take the flock, reporting whom we wait for; raise after ``wait_s``."""
    started = time.monotonic()
    reported = None
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waited = time.monotonic() - started
        if waited >= wait_s:
            raise WorkspaceBusyError(
                f"workspace {path.parent.parent}: expected the lock {path} to be "
                f"free within {wait_s:.0f} s, but {read_holder(path)} still holds "
                "it; try again when that run has finished"
            )
        if reported is None or waited - reported >= REPORT_EVERY_S:
            on_wait(f"waiting for the workspace lock held by {read_holder(path)}")
            reported = waited
        time.sleep(min(poll_s, max(wait_s - waited, 0.0)))


def _write_holder(descriptor: int, holder: str) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"pid {os.getpid()}: {holder}, since {stamp}\n".encode(), 0)


def read_holder(path: Path) -> str:
    """Describe the current holder of the lock at ``path``, as it wrote itself."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        text = ""
    return text or "another process"


def holds_workspace_lock(
    function: Callable[Arguments, Result],
) -> Callable[Arguments, Result]:
    """Run a flow function that takes a ``repo`` argument under its lock.

    Put it below ``@flow``: the wait then shows in that flow run's log.
    """
    signature = inspect.signature(function)

    @functools.wraps(function)
    def locked(*args: Arguments.args, **kwargs: Arguments.kwargs) -> Result:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        repo = Path(str(bound.arguments["repo"])).resolve()
        logger = _run_logger()
        with workspace_lock(repo, _describe_run(function.__name__), on_wait=logger):
            return function(*args, **kwargs)

    return locked


def _run_logger() -> Callable[[str], None]:
    """Return the Prefect run logger's ``warning`` inside a run, else ours."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger().warning
    except MissingContextError:
        return log.warning


def _describe_run(name: str) -> str:
    from prefect.runtime import flow_run

    run_name = flow_run.get_name()
    return f"flow run {run_name} ({name})" if run_name else f"{name} (no flow run)"
