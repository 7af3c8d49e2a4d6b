"""Register a model that passes the quality gate with GTO, DVC's model registry.

A registered version is a git tag ``<model>@vX.Y.Z`` on a commit whose
``dvc.lock`` pins the prepared data, the split and the weights, next to the
``params.yaml``, ``dvc.yaml`` and code that produced them. Registration refuses
when the workspace does not match ``dvc.lock`` or when pipeline code has
uncommitted edits, because such a commit could not reproduce the model.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

STATE_FILES = ("dvc.lock", "dvc.yaml", "params.yaml", "metrics")
CODE_DIRS = ("tasks", "flows")
FALLBACK_AUTHOR = {"name": "xray-laterality pipeline", "email": "pipeline@localhost"}


@dataclass(frozen=True)
class GateResult:
    """Whether a model may be registered, and the reasons when it may not."""

    passed: bool
    reasons: tuple[str, ...]


def check_gate(
    metrics: dict[str, object], min_accuracy: float, min_lateral_recall: float
) -> GateResult:
    """Compare test metrics with the thresholds in ``params.yaml``."""
    reasons = []
    accuracy = float(metrics["accuracy"])
    recall = float(metrics["lateral_recall"])
    if accuracy < min_accuracy:
        reasons.append(f"test accuracy {accuracy:.4f} is below {min_accuracy}")
    if recall < min_lateral_recall:
        reasons.append(f"lateral recall {recall:.4f} is below {min_lateral_recall}")
    return GateResult(not reasons, tuple(reasons))


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` and return its standard output."""
    env = dict(os.environ)
    if not _configured(repo, "user.email"):
        env |= {
            "GIT_AUTHOR_NAME": FALLBACK_AUTHOR["name"],
            "GIT_AUTHOR_EMAIL": FALLBACK_AUTHOR["email"],
            "GIT_COMMITTER_NAME": FALLBACK_AUTHOR["name"],
            "GIT_COMMITTER_EMAIL": FALLBACK_AUTHOR["email"],
        }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {repo}: {done.stderr}")
    return done.stdout.strip()


def _configured(repo: Path, key: str) -> bool:
    done = subprocess.run(
        ["git", "config", key], cwd=repo, capture_output=True, text=True
    )
    return bool(done.stdout.strip())


def check_reproducible(repo: Path) -> None:
    """Refuse to register from a workspace a commit could not reproduce.

    Raises:
        RuntimeError: pipeline code has uncommitted edits, or DVC reports
            stages whose outputs do not match ``dvc.lock``.
    """
    dirty = git(repo, "status", "--porcelain", "--untracked-files=no", *CODE_DIRS)
    if dirty:
        raise RuntimeError(
            "register: commit or stash the pipeline code first; uncommitted:\n"
            + dirty
        )
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        stale = dvc_repo.status()
    if stale:
        raise RuntimeError(
            f"register: the workspace does not match dvc.lock; run `dvc repro` "
            f"first (stale: {sorted(stale)})"
        )


def commit_pipeline_state(repo: Path, message: str) -> str:
    """Commit ``dvc.lock``, params, the pipeline file and metrics; return HEAD.

    Nothing is committed when they already match HEAD.
    """
    present = [name for name in STATE_FILES if (repo / name).exists()]
    git(repo, "add", "--", *present)
    if git(repo, "diff", "--cached", "--name-only"):
        git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def version_at(repo: Path, name: str, commit: str) -> str | None:
    """Return the version of ``name`` already registered at ``commit``, if any."""
    from gto.api import show
    from gto.exceptions import ArtifactNotFound

    try:
        rows = show(str(repo), name, registered_only=True)
    except ArtifactNotFound:
        return None
    for row in rows:
        if row.get("commit_hexsha", "").startswith(commit) or commit.startswith(
            row.get("commit_hexsha", "?")
        ):
            return row["version"]
    return None


def register_model(repo: Path, name: str, metrics: dict[str, object]) -> str:
    """Commit the pipeline state and tag it as a new version of ``name``.

    Returns:
        The registered version, or the existing one when this exact commit was
        registered before.
    """
    check_reproducible(repo)
    summary = f"accuracy {metrics['accuracy']}, lateral recall {metrics['lateral_recall']}"
    commit = commit_pipeline_state(repo, f"Register {name}: {summary}")
    existing = version_at(repo, name, commit)
    if existing:
        log.info("register: %s %s already points at %s", name, existing, commit[:8])
        return existing
    from gto.api import register

    tag = register(str(repo), name, "HEAD", message=f"{name}: {summary}")
    version = tag.version if hasattr(tag, "version") else str(tag)
    log.info("register: %s %s at commit %s (%s)", name, version, commit[:8], summary)
    return version


def read_metrics(path: Path) -> dict[str, object]:
    """Load ``metrics/evaluation.json``, naming the file when it is missing."""
    if not path.is_file():
        raise FileNotFoundError(f"register: expected evaluation metrics at {path}")
    return json.loads(path.read_text())
