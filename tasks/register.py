"""Decide whether a trained model enters the registry, and register it with GTO.

The challenger must first pass the absolute thresholds in ``params.yaml``. If a
champion holds ``prod``, both are scored on the champion's own test images
(kept in the test subset by the split), and the challenger is promoted only if
it is not worse by more than ``max_regression`` on accuracy, lateral recall
and ROC AUC; otherwise it is registered and assigned ``staging`` only.

A registered version is a tag on a commit whose ``dvc.lock`` pins the data,
split and weights next to the params, pipeline definition, model card and code
that produced them. Registration refuses when the workspace does not match
``dvc.lock`` or pipeline code has uncommitted edits, because such a commit
could not reproduce the model.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

STATE_FILES = (
    "dvc.lock",
    "dvc.yaml",
    "params.yaml",
    "metrics",
    "data/frozen_test.csv",
    "models",
)
CODE_DIRS = ("tasks", "flows")
COMPARED = ("accuracy", "lateral_recall", "roc_auc")
FALLBACK_AUTHOR = ("xray-laterality pipeline", "pipeline@localhost")


@dataclass(frozen=True)
class GateDecision:
    """What happens to a challenger, why, and the numbers behind it.

    ``action`` is ``promote`` (register and assign prod), ``register``
    (register and assign staging) or ``reject`` (not registered).
    """

    action: str
    reasons: tuple[str, ...]
    challenger: dict[str, object]
    champion_version: str | None = None
    frozen: dict[str, dict[str, object]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-ready copy for reports and model cards."""
        return asdict(self)


def check_thresholds(
    metrics: dict[str, object], min_accuracy: float, min_lateral_recall: float
) -> list[str]:
    """Return why ``metrics`` fail the absolute gate; empty when they pass."""
    reasons = []
    accuracy, recall = float(metrics["accuracy"]), float(metrics["lateral_recall"])
    if accuracy < min_accuracy:
        reasons.append(f"test accuracy {accuracy:.4f} is below {min_accuracy}")
    if recall < min_lateral_recall:
        reasons.append(f"lateral recall {recall:.4f} is below {min_lateral_recall}")
    return reasons


def compare_with_champion(
    challenger: dict[str, object], champion: dict[str, object], max_regression: float
) -> list[str]:
    """Return the metrics on which the challenger is worse than allowed."""
    worse = []
    for name in COMPARED:
        ours, theirs = challenger.get(name), champion.get(name)
        if ours is None or theirs is None:
            continue  # AUC is undefined on a one-class set
        if float(ours) < float(theirs) - max_regression:
            worse.append(
                f"{name} {float(ours):.4f} is more than {max_regression} below "
                f"the champion's {float(theirs):.4f}"
            )
    return worse


def decide(
    metrics: dict[str, object],
    min_accuracy: float,
    min_lateral_recall: float,
    max_regression: float,
    champion_version: str | None,
    frozen: dict[str, dict[str, object]],
) -> GateDecision:
    """Combine the absolute gate and the champion comparison into one decision.

    Args:
        frozen: ``{"challenger": metrics, "champion": metrics}`` on the
            champion's test images; empty when there is no champion.
    """
    failed = check_thresholds(metrics, min_accuracy, min_lateral_recall)
    if failed:
        return GateDecision("reject", tuple(failed), metrics, champion_version, frozen)
    if champion_version is None:
        return GateDecision("promote", ("no champion in prod",), metrics)
    if not frozen:
        reason = (
            f"none of champion {champion_version}'s test images remain, so the two "
            "cannot be compared; review and promote by hand"
        )
        return GateDecision("register", (reason,), metrics, champion_version)
    worse = compare_with_champion(
        frozen["challenger"], frozen["champion"], max_regression
    )
    if worse:
        return GateDecision("register", tuple(worse), metrics, champion_version, frozen)
    reason = f"not worse than champion {champion_version} on its test images"
    return GateDecision("promote", (reason,), metrics, champion_version, frozen)


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` and return its output; commits get a fallback author."""
    env = dict(os.environ)
    if not _git_identity(repo):
        name, email = FALLBACK_AUTHOR
        env |= {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {repo}: {done.stderr}")
    return done.stdout.strip()


def _git_identity(repo: Path) -> bool:
    done = subprocess.run(
        ["git", "config", "user.email"], cwd=repo, capture_output=True, text=True
    )
    return bool(done.stdout.strip()) or "GIT_AUTHOR_EMAIL" in os.environ


def check_reproducible(repo: Path) -> None:
    """Refuse to register from a workspace that a commit could not reproduce.

    Raises:
        RuntimeError: pipeline code has uncommitted edits, or DVC reports
            stages whose outputs do not match ``dvc.lock``.
    """
    dirty = git(repo, "status", "--porcelain", "--untracked-files=no", *CODE_DIRS)
    if dirty:
        raise RuntimeError(
            f"register: commit or stash the pipeline code first; uncommitted:\n{dirty}"
        )
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        stale = dvc_repo.status()
    if stale:
        raise RuntimeError(
            "register: the workspace does not match dvc.lock; run `dvc repro` "
            f"first (stale: {sorted(stale)})"
        )


def commit_pipeline_state(repo: Path, message: str) -> str:
    """Commit ``dvc.lock``, params, metrics and model card; return HEAD.

    Nothing is committed when they already match HEAD.
    """
    present = [name for name in STATE_FILES if (repo / name).exists()]
    git(repo, "add", "--", *present)
    if git(repo, "diff", "--cached", "--name-only"):
        git(repo, "commit", "--quiet", "--no-verify", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def next_version(repo: Path, name: str) -> str:
    """Return the version GTO will give the next registration (patch bump)."""
    from tasks.registry import registered_versions

    versions = registered_versions(repo, name)
    if not versions:
        return "v0.0.1"
    major, minor, patch = versions[0].version.lstrip("v").split(".")
    return f"v{major}.{minor}.{int(patch) + 1}"


def tag_version(repo: Path, name: str, version: str, decision: GateDecision) -> None:
    """Tag HEAD as ``name@version`` and assign the stage the decision names."""
    from gto.api import register

    from tasks.registry import assign_stage

    summary = (
        f"accuracy {decision.challenger['accuracy']}, "
        f"lateral recall {decision.challenger['lateral_recall']}"
    )
    register(str(repo), name, "HEAD", version=version, message=f"{name}: {summary}")
    assign_stage(
        repo, name, version, "prod" if decision.action == "promote" else "staging"
    )


def write_decision(path: Path, decision: GateDecision) -> None:
    """Save the gate decision as JSON for the run report and the audit trail."""
    from tasks import atomic

    atomic.write_json(path, decision.as_dict())


def read_metrics(path: Path) -> dict[str, object]:
    """Load ``metrics/evaluation.json``, naming the file when it is missing."""
    if not path.is_file():
        raise FileNotFoundError(f"register: expected evaluation metrics at {path}")
    return json.loads(path.read_text())
