"""Run DVC commands for the flow and the CLI, so both reproduce stages one way.

DVC decides what is stale from ``dvc.lock``; this module only runs
``dvc repro --single-item STAGE`` (and ``dvc push``) in a subprocess whose
``PATH`` starts with the running interpreter's folder, so that the stage
commands (``python -m tasks.<stage>``) use the same environment as the caller.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

STAGES = ("ingest", "split", "train", "evaluate")


def dvc_environment() -> dict[str, str]:
    """Return the environment for DVC: this interpreter first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_dvc(repo: Path, args: list[str], on_line: Callable[[str], None]) -> None:
    """Run ``dvc ARGS`` in ``repo``, passing each output line to ``on_line``.

    Raises:
        RuntimeError: DVC exits non-zero; the message carries its last lines.
    """
    command = [sys.executable, "-m", "dvc", *args]
    tail: list[str] = []
    with subprocess.Popen(
        command,
        cwd=repo,
        env=dvc_environment(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            if line:
                on_line(line)
                tail = (tail + [line])[-15:]
    if process.returncode != 0:
        raise RuntimeError(
            f"`dvc {' '.join(args)}` failed in {repo} with exit code "
            f"{process.returncode}:\n" + "\n".join(tail)
        )


def reproduce_stage(
    repo: Path, stage: str, on_line: Callable[[str], None], force: bool = False
) -> None:
    """Reproduce one stage if DVC finds it stale (always with ``force``)."""
    if stage not in STAGES:
        raise ValueError(f"stage: expected one of {list(STAGES)}, got '{stage}'")
    run_dvc(
        repo,
        ["repro", "--single-item", *(["--force"] if force else []), stage],
        on_line,
    )


def push_outputs(repo: Path, on_line: Callable[[str], None]) -> None:
    """Send the data and weights pinned by ``dvc.lock`` to the default remote."""
    run_dvc(repo, ["push"], on_line)
