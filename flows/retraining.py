"""Prefect flow ``retraining``: retrain only when the source holds new data.

This is the flow that ``laterality serve`` schedules. It hashes every
radiograph the source names and compares the content with what the newest
registered version was built from (:mod:`tasks.source_changes`). Nothing
changed: the run says "no new data" and ends without training or registering.
Otherwise it runs ``training-pipeline`` as a subflow: DVC reruns the stale
stages only, then come the gate against ``prod``, registration, ``dvc push``
and the run report.

The whole run holds the workspace lock (:mod:`tasks.workspace_lock`), so a
scheduled run and a ``laterality run`` never write one workspace together.
``training-pipeline`` is imported only when there is something to train: it
loads TensorFlow, which would triple the cost of an unchanged-data run.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.tasks import exponential_backoff

from tasks.config import IngestParams, load_params
from tasks.registry import VersionInfo
from tasks.source_changes import (
    Listing,
    SourceChanges,
    compare_listings,
    listing_at,
    listing_from_source,
    newest_registered,
)
from tasks.sources import list_source
from tasks.workspace_lock import holds_workspace_lock

NO_NEW_DATA = "no new data"
RETRAINED = "retrained"


@task
def hash_source(
    repo: Path, settings: IngestParams, classes: tuple[str, ...]
) -> Listing:
    """List the source as ingest would and hash each file's content."""
    entries = list_source(
        repo / settings.source, repo / settings.root, classes, settings.min_per_class
    )
    listing = listing_from_source(entries)
    get_run_logger().info(
        "source: %d files listed, %d distinct (content, view) pairs",
        len(entries),
        len(listing),
    )
    return listing


@task(
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
)
def read_registered_dataset(
    repo: Path, name: str
) -> tuple[VersionInfo | None, Listing]:
    """Read what the newest version was built from; retried, as it may be remote."""
    registered = newest_registered(repo, name)
    if registered is None:
        get_run_logger().info("registry: no version of %s yet", name)
        return None, frozenset()
    listing = listing_at(repo, registered.commit)
    get_run_logger().info(
        "registry: %s %s was built from %d source files at %s",
        name,
        registered.version,
        len(listing),
        registered.commit[:8],
    )
    return registered, listing


def render_no_change_report(changes: SourceChanges, seconds: float) -> str:
    """Describe an unchanged-data run for the Prefect UI."""
    return (
        "# Retraining run\n\n**No new data**: the source holds the same "
        f"{changes.source_images} radiographs (by content and view) as "
        f"**{changes.since}**. Nothing was trained or registered.\n\n"
        f"Checked in {seconds:.1f} s.\n"
    )


@flow(name="retraining")
@holds_workspace_lock
def retraining(
    repo: str = ".", push: bool = True, force: bool = False
) -> dict[str, object]:
    """Retrain and register if the source changed since the newest version.

    Args:
        repo: the repository root holding ``dvc.yaml`` and ``params.yaml``.
        push: send data and weights to the DVC remote after registering.
        force: run the training pipeline even when no image changed (after an
            edit of params or code, which this check does not look at).
    """
    logger = get_run_logger()
    started = time.perf_counter()
    root = Path(repo).resolve()
    params = load_params(root / "params.yaml")

    current = hash_source(root, params.ingest, params.base.classes)
    registered, previous = read_registered_dataset(root, params.register.model_name)
    changes = compare_listings(
        current, previous, registered.version if registered else None
    )
    logger.info("%s", changes.describe())

    if not changes.found and not force:
        seconds = time.perf_counter() - started
        create_markdown_artifact(
            render_no_change_report(changes, seconds), key="retraining-report"
        )
        logger.info("%s: nothing trained or registered (%.1f s)", NO_NEW_DATA, seconds)
        return {"status": NO_NEW_DATA, "version": None, "changes": changes.as_dict()}

    from flows.training_pipeline import training_pipeline

    result = training_pipeline(repo=str(root), push=push)
    return {"status": RETRAINED, **result, "changes": changes.as_dict()}
