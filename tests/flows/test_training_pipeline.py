"""The whole pipeline, end to end, in a temporary copy of the repository.

A real git repository, real DVC and GTO, the real ``laterality`` CLI and the
Prefect flow on an ephemeral API; the data are generated radiograph-like
images at 64 px and training runs for two epochs, so one run takes about a
minute on two cores.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.flows.repo_copy import BIN, new_pipeline_repo, run, tiny_params

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository copy on which ``laterality run`` has completed once."""
    repo = new_pipeline_repo(tmp_path_factory.mktemp("pipeline"))
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


def test_run_writes_a_model_card_with_the_saved_calibration(trained_repo: Path):
    card = json.loads((trained_repo / "models/model_card.json").read_text())
    saved = json.loads((trained_repo / "models/class_index.json").read_text())
    metrics = json.loads((trained_repo / "metrics/evaluation.json").read_text())
    assert card["calibration"]["temperature"] == saved["calibration"]["temperature"]
    assert card["calibration"]["test_ece"] == metrics["ece"]
    markdown = (trained_repo / "models/model_card.md").read_text()
    assert f'"temperature": {saved["calibration"]["temperature"]}' in markdown


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


def test_console_script_lists_every_command():
    done = subprocess.run(
        [str(BIN / "laterality"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    for command in (
        "ingest",
        "split",
        "train",
        "evaluate",
        "register",
        "run",
        "predict",
        "models",
        "promote",
        "rollback",
        "lineage",
    ):
        assert command in done.stdout
