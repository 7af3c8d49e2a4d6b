"""Run the gate after evaluation and register the challenger as it decides.

This is the one place that knows the order: skip a model that is already
registered, score the champion, decide, write the model card, commit the
pipeline state, tag the version and assign its stage.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from tasks import atomic
from tasks.champion import compare_on_frozen_set, frozen_test_images
from tasks.config import RegisterParams
from tasks.evaluate import EVALUATION_FILE
from tasks.lineage import build_model_card, write_model_card
from tasks.paths import MODEL_FILE
from tasks.register import (
    GateDecision,
    check_reproducible,
    check_thresholds,
    commit_pipeline_state,
    decide,
    next_version,
    read_metrics,
    tag_version,
    write_decision,
)
from tasks.registry import locked_hashes, registered_versions, version_in_stage
from tasks.split import FROZEN_TEST_FILE, SPLIT_FILE

log = logging.getLogger(__name__)

GATE_FILE = Path("metrics/gate.json")


@dataclass(frozen=True)
class RegistrationOutcome:
    """The gate's decision and the version it produced, if any."""

    decision: GateDecision | None
    version: str | None
    already_registered: bool = False


def workspace_model_md5(repo: Path) -> str | None:
    """Return the md5 that the working ``dvc.lock`` pins for the weights."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text()) or {}
    for stage in lock.get("stages", {}).values():
        for out in stage.get("outs", []):
            if out["path"] == MODEL_FILE.as_posix():
                return out["md5"]
    return None


def version_with_weights(repo: Path, name: str, md5: str | None) -> str | None:
    """Return the registered version whose weights have ``md5``, if any."""
    for info in registered_versions(repo, name):
        if md5 and locked_hashes(repo, info.commit).get(MODEL_FILE.as_posix()) == md5:
            return info.version
    return None


def refresh_frozen_test_set(repo: Path, name: str) -> bool:
    """Rewrite ``data/frozen_test.csv`` from the registry; True if it changed."""
    table = frozen_test_images(repo, name)
    target = repo / FROZEN_TEST_FILE
    text = table.to_csv(index=False, lineterminator="\n")
    if target.is_file() and target.read_text() == text:
        return False
    atomic.write_text(target, text)
    return True


def gate_and_register(
    repo: Path,
    settings: RegisterParams,
    classes: tuple[str, ...],
    threshold: float,
    flow_run_id: str | None = None,
) -> RegistrationOutcome:
    """Decide on the evaluated model and register it if the gate allows."""
    name = settings.model_name
    existing = version_with_weights(repo, name, workspace_model_md5(repo))
    if existing:
        log.info("register: these weights are already %s %s", name, existing)
        return RegistrationOutcome(None, existing, already_registered=True)
    metrics = read_metrics(repo / EVALUATION_FILE)
    champion = version_in_stage(repo, name, "prod")
    frozen = {}
    if champion and not check_thresholds(
        metrics, settings.min_accuracy, settings.min_lateral_recall
    ):
        frozen = compare_on_frozen_set(
            repo,
            name,
            champion,
            repo / MODEL_FILE,
            repo / SPLIT_FILE,
            repo / "data/prepared",
            classes,
            threshold,
        )
    decision = decide(
        metrics,
        settings.min_accuracy,
        settings.min_lateral_recall,
        settings.max_regression,
        champion,
        frozen,
    )
    write_decision(repo / GATE_FILE, decision)
    log.info("gate: %s (%s)", decision.action, "; ".join(decision.reasons))
    if decision.action == "reject":
        return RegistrationOutcome(decision, None)
    check_reproducible(repo)
    version = next_version(repo, name)
    write_model_card(
        repo, build_model_card(repo, name, version, decision.as_dict(), flow_run_id)
    )
    commit_pipeline_state(repo, f"Register {name} {version} ({decision.action})")
    tag_version(repo, name, version, decision)
    return RegistrationOutcome(decision, version)


def data_changes(repo: Path, name: str) -> dict[str, dict[str, int]]:
    """Count images added and removed per view since the newest version."""
    import dvc.api

    versions = registered_versions(repo, name)
    current = pd.read_csv(repo / "data/prepared/manifest.csv", dtype=str)
    if not versions:
        return {
            v: {"added": int(n), "removed": 0}
            for v, n in current["label"].value_counts().sort_index().items()
        }
    with dvc.api.open(
        "data/prepared/manifest.csv", repo=str(repo), rev=versions[0].commit
    ) as handle:
        previous = pd.read_csv(io.StringIO(handle.read()), dtype=str)
    added = current[~current["sha256"].isin(previous["sha256"])]
    removed = previous[~previous["sha256"].isin(current["sha256"])]
    views = sorted(set(current["label"]) | set(previous["label"]))
    return {
        view: {
            "added": int((added["label"] == view).sum()),
            "removed": int((removed["label"] == view).sum()),
        }
        for view in views
    }
