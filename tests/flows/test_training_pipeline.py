"""The whole pipeline, end to end, in a temporary copy of the repository.

A real git repository, real DVC and GTO, the real ``laterality`` CLI and the
Prefect flow on an ephemeral API; the data are generated radiograph-like
images at 64 px and training runs for two epochs, so one run takes about a
minute on two cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.synthetic import write_manifest_source

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def run(repo: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in ``repo`` with the test interpreter's tools on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(BIN), env["PATH"]])
    env["PREFECT_HOME"] = str(repo / ".prefect")
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        shown = " ".join(command)
        raise AssertionError(
            f"{shown} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
    return done


def copy_repository(target: Path) -> Path:
    """Copy the tracked files, minus the bundled images, into a new git repo."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in listed:
        if name.startswith(("data/sample/", "data/weights/", "tests/")):
            continue
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def tiny_params(repo: Path, **train: object) -> None:
    """Point ingest at generated images and shrink images and training."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["base"]["image_size"] = 64
    params["ingest"] |= {
        "source": "data/synthetic/manifest.csv",
        "root": "data/synthetic",
        "min_side": 32,
    }
    params["train"] |= {"input_size": 32, "epochs": 2, "batch_size": 8, **train}
    params["register"] |= {"min_accuracy": 0.5, "min_lateral_recall": 0.5}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def trained_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository copy on which ``laterality run`` has completed once."""
    repo = copy_repository(tmp_path_factory.mktemp("pipeline"))
    write_manifest_source(repo / "data" / "synthetic", per_class=30, size=64)
    tiny_params(repo)
    run(repo, "git", "init", "--quiet", "--initial-branch", "main")
    run(repo, "git", "add", "--all")
    run(
        repo,
        "git",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qm",
        "init",
    )
    done = run(repo, "laterality", "run")
    assert "promote: registered version: v0.0.1" in done.stdout
    return repo


def test_run_registers_a_version_on_a_commit_holding_dvc_lock(trained_repo: Path):
    tag = run(trained_repo, "git", "tag", "--list", "laterality-classifier@*").stdout
    assert tag.split() == ["laterality-classifier@v0.0.1"]
    committed = run(
        trained_repo,
        "git",
        "diff-tree",
        "--no-commit-id",
        "--name-only",
        "-r",
        "laterality-classifier@v0.0.1^{commit}",
    ).stdout.split()
    assert "dvc.lock" in committed
    assert "metrics/evaluation.json" in committed


def test_run_leaves_metrics_reports_and_pushed_weights(trained_repo: Path):
    metrics = json.loads((trained_repo / "metrics/evaluation.json").read_text())
    split = (trained_repo / "data/split/split.csv").read_text().splitlines()
    test_rows = [row for row in split[1:] if row.endswith(",test")]
    assert metrics["test_images"] == len(test_rows)
    assert sum(map(sum, metrics["confusion_matrix"])) == len(test_rows)
    for name in ("confusion_matrix.png", "roc_curve.png", "test_grid.png"):
        assert (trained_repo / "reports" / name).read_bytes()[:4] == b"\x89PNG"
    assert any((trained_repo / "dvc-storage").rglob("*"))


def test_dvc_repro_after_run_does_nothing(trained_repo: Path):
    done = run(trained_repo, "dvc", "repro")
    assert "Running stage" not in done.stdout
    assert run(trained_repo, "dvc", "status").stdout.strip() == (
        "Data and pipelines are up to date."
    )


def test_dvc_repro_retrains_when_a_training_param_changes(
    trained_repo: Path, tmp_path: Path
):
    repo = Path(shutil.copytree(trained_repo, tmp_path / "copy", symlinks=True))
    tiny_params(repo, learning_rate=0.002)
    done = run(repo, "dvc", "repro")
    ran = [
        line.split("'")[1]
        for line in done.stdout.splitlines()
        if line.startswith("Running stage")
    ]
    assert ran == ["train", "evaluate"]


def test_predict_cli_uses_the_registered_version(trained_repo: Path):
    images = trained_repo / "data" / "synthetic"
    done = run(
        trained_repo,
        "laterality",
        "predict",
        str(images / "lateral"),
        str(images / "manifest.csv"),
    )
    lines = done.stdout.splitlines()
    assert lines[0] == "path,label,probability"
    assert len(lines) == 1 + 30
    assert "manifest.csv" in done.stderr


def test_run_twice_registers_no_new_version(trained_repo: Path, tmp_path: Path):
    repo = Path(shutil.copytree(trained_repo, tmp_path / "again", symlinks=True))
    done = run(repo, "laterality", "run", "--no-push")
    assert "unchanged: registered version: v0.0.1" in done.stdout
    tags = run(repo, "git", "tag", "--list", "laterality-classifier@*").stdout.split()
    assert tags == ["laterality-classifier@v0.0.1"]
