"""Prefect flow ``training-pipeline``: ingest, split, train, evaluate, register.

Each DVC stage is one Prefect task that asks DVC to reproduce it, so a flow run
and ``dvc repro`` execute the same commands and skip the same unchanged work.
Before the stages, the frozen test set is refreshed from the registry; after
them come the gate and registration, ``dvc push``, and a Markdown report.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.report import render_run_report
from tasks import pipeline
from tasks.config import RegisterParams, load_params
from tasks.evaluate import EVALUATION_FILE
from tasks.promotion import (
    RegistrationOutcome,
    data_changes,
    gate_and_register,
    refresh_frozen_test_set,
)
from tasks.register import commit_pipeline_state, read_metrics
from tasks.workspace_lock import holds_workspace_lock


@task
def freeze_test_sets(repo: Path, name: str) -> None:
    """Keep every registered version's test images in the test subset."""
    if refresh_frozen_test_set(repo, name):
        get_run_logger().info("frozen test set updated from the registry")


@task(task_run_name="reproduce-{stage}")
def reproduce_stage(repo: Path, stage: str) -> None:
    """Reproduce one DVC stage, logging DVC's and the stage's output."""
    logger = get_run_logger()
    logger.info("dvc repro --single-item %s", stage)
    pipeline.reproduce_stage(repo, stage, logger.info)


@task
def measure_data_changes(repo: Path, name: str) -> dict[str, dict[str, int]]:
    """Count images added and removed per view since the newest version."""
    return data_changes(repo, name)


@task
def register_challenger(
    repo: Path, settings: RegisterParams, classes: tuple[str, ...], threshold: float
) -> RegistrationOutcome:
    """Apply the gate and register or promote the challenger as it decides."""
    logger = get_run_logger()
    outcome = gate_and_register(repo, settings, classes, threshold, flow_run.get_id())
    if outcome.already_registered:
        commit_pipeline_state(repo, "Record pipeline state (model unchanged)")
        logger.info("no new model: weights already registered as %s", outcome.version)
    elif outcome.version:
        logger.info(
            "%s %s: %s",
            outcome.decision.action,
            outcome.version,
            "; ".join(outcome.decision.reasons),
        )
    else:
        logger.warning("not registered: %s", "; ".join(outcome.decision.reasons))
    return outcome


@task(retries=2, retry_delay_seconds=[5, 20])
def push_to_remote(repo: Path) -> None:
    """Push data and weights to the DVC remote; retried, since remotes fail."""
    pipeline.push_outputs(repo, get_run_logger().info)


@flow(name="training-pipeline")
@holds_workspace_lock
def training_pipeline(repo: str = ".", push: bool = True) -> dict[str, object]:
    """Run the whole pipeline in ``repo``; return the version and metrics."""
    root = Path(repo).resolve()
    params = load_params(root / "params.yaml")
    name = params.register.model_name

    freeze_test_sets(root, name)
    for stage in pipeline.STAGES:
        reproduce_stage(root, stage)

    changes = measure_data_changes(root, name)
    outcome = register_challenger(
        root, params.register, params.base.classes, params.evaluate.threshold
    )
    if push:
        push_to_remote(root)

    metrics = read_metrics(root / EVALUATION_FILE)
    create_markdown_artifact(
        render_run_report(metrics, outcome, changes), key="training-pipeline-report"
    )
    return {
        "version": outcome.version,
        "metrics": metrics,
        "action": outcome.decision.action if outcome.decision else "unchanged",
    }
