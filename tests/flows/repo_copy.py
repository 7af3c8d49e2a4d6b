"""Build throwaway copies of this repository for end-to-end tests.

A copy is a real git repository with the project's code, DVC configuration and
generated radiograph-like images instead of the bundled ones, so a full
pipeline run takes well under a minute on two cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT
from tests.synthetic import write_manifest_source

BIN = Path(sys.executable).parent
MODEL = "laterality-classifier"
# Not copied: the bundled images, and the metrics of the pipeline run on them,
# which a copy holding other images must not take as its previous version.
SKIPPED = ("data/sample/", "metrics/", "tests/", "benchmarks/")


def run(repo: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in ``repo``; ``laterality`` runs the copy's own code."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(BIN), env["PATH"]])
    env["PREFECT_HOME"] = str(repo / ".prefect")
    env["LATERALITY_SALT_FILE"] = str(repo / ".laterality" / "salt")
    if command[0] == "laterality":
        command = (sys.executable, "-m", "flows.cli", *command[1:])
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        shown = " ".join(command)
        raise AssertionError(
            f"{shown} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
    return done


def copy_repository(target: Path) -> Path:
    """Copy the tracked and new files, minus those ``SKIPPED`` names."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in listed:
        if name.startswith(SKIPPED):
            continue
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def tiny_params(repo: Path, register: dict | None = None, **train: object) -> None:
    """Point ingest at generated images and shrink images and training."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["base"]["image_size"] = 64
    params["ingest"] |= {
        "source": "data/synthetic/manifest.csv",
        "root": "data/synthetic",
        "min_side": 32,
    }
    params["train"] |= {
        "architecture": "simple_cnn",
        "input_size": 32,
        "epochs": 8,
        "batch_size": 8,
        "learning_rate": 0.003,
        **train,
    }
    params["register"] |= {
        "min_accuracy": 0.5,
        "min_lateral_recall": 0.5,
        **(register or {}),
    }
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def new_pipeline_repo(target: Path, per_class: int = 30) -> Path:
    """Create a committed repository copy with generated images in it."""
    repo = copy_repository(target)
    write_manifest_source(repo / "data" / "synthetic", per_class=per_class, size=64)
    tiny_params(repo)
    run(repo, "git", "init", "--quiet", "--initial-branch", "main")
    commit_all(repo, "init")
    return repo


def commit_all(repo: Path, message: str) -> None:
    """Commit every change in ``repo``, as a person editing params would."""
    run(repo, "git", "add", "--all")
    run(
        repo,
        "git",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        message,
    )
