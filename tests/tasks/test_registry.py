"""GTO versions and stages in a scratch git repository (no training needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from gto.api import register

from tasks.registry import (
    assign_stage,
    registered_versions,
    resolve_model,
    rollback,
    version_in_stage,
)

NAME = "laterality-classifier"


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with three commits, each registered as a version."""
    for key, value in {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }.items():
        monkeypatch.setenv(key, value)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for index in range(3):
        subprocess.run(
            ["git", "commit", "-q", "--allow-empty", "-m", f"c{index}"],
            cwd=tmp_path,
            check=True,
        )
        register(str(tmp_path), NAME, "HEAD", version=f"v0.0.{index + 1}")
    return tmp_path


def test_registered_versions_lists_newest_first(git_repo: Path):
    versions = [info.version for info in registered_versions(git_repo, NAME)]
    assert versions == ["v0.0.3", "v0.0.2", "v0.0.1"]


def test_registered_versions_is_empty_for_an_unknown_model(git_repo: Path):
    assert registered_versions(git_repo, "other-model") == []


def test_version_in_stage_follows_the_latest_assignment(git_repo: Path):
    assert version_in_stage(git_repo, NAME, "prod") is None
    assign_stage(git_repo, NAME, "v0.0.1", "prod")
    assign_stage(git_repo, NAME, "v0.0.3", "prod")
    assert version_in_stage(git_repo, NAME, "prod") == "v0.0.3"


def test_rollback_returns_prod_to_its_previous_holder(git_repo: Path):
    assign_stage(git_repo, NAME, "v0.0.1", "prod")
    assign_stage(git_repo, NAME, "v0.0.2", "staging")
    assign_stage(git_repo, NAME, "v0.0.3", "prod")
    assert rollback(git_repo, NAME) == "v0.0.1"
    assert version_in_stage(git_repo, NAME, "prod") == "v0.0.1"
    assert version_in_stage(git_repo, NAME, "staging") == "v0.0.2"


def test_rollback_refuses_when_prod_never_changed_hands(git_repo: Path):
    assign_stage(git_repo, NAME, "v0.0.2", "prod")
    with pytest.raises(LookupError, match="only version prod has held"):
        rollback(git_repo, NAME)


def test_assign_stage_refuses_an_unknown_stage_or_version(git_repo: Path):
    with pytest.raises(ValueError, match="expected one of"):
        assign_stage(git_repo, NAME, "v0.0.1", "production")
    with pytest.raises(LookupError, match="not registered"):
        assign_stage(git_repo, NAME, "v9.9.9", "prod")


def test_resolve_model_without_prod_says_how_to_get_one(git_repo: Path):
    with pytest.raises(LookupError, match="no version of .* is in 'prod'"):
        resolve_model(git_repo, NAME, None)


def test_resolve_model_rejects_a_spec_that_is_no_path_version_or_stage(
    git_repo: Path,
):
    with pytest.raises(ValueError, match="expected a model file, a version"):
        resolve_model(git_repo, NAME, "latest-and-greatest")


def test_resolve_model_returns_an_existing_file_unchanged(git_repo: Path):
    model = git_repo / "model.keras"
    model.write_bytes(b"x")
    assert resolve_model(git_repo, NAME, str(model)) == model


def test_registry_and_change_check_import_without_tensorflow():
    """Listing versions and an unchanged-data check must not pay for TensorFlow."""
    probe = (
        "import sys, tasks.registry, tasks.source_changes, flows.retraining; "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
