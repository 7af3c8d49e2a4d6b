"""Prefect flow ``training-pipeline``: ingest, split, train, evaluate, register.

Each DVC stage is one Prefect task that asks DVC to reproduce it, so a flow run
and ``dvc repro`` execute the same commands and skip the same unchanged work.
Registration and ``dvc push`` follow as tasks of their own.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from tasks import pipeline
from tasks.config import load_params
from tasks.evaluate import EVALUATION_FILE
from tasks.register import check_gate, read_metrics, register_model


@task(task_run_name="reproduce-{stage}")
def reproduce_stage(repo: Path, stage: str) -> None:
    """Reproduce one DVC stage, logging DVC's and the stage's output."""
    logger = get_run_logger()
    logger.info("dvc repro --single-item %s", stage)
    pipeline.reproduce_stage(repo, stage, logger.info)


@task
def register_if_gate_passes(
    repo: Path, name: str, min_accuracy: float, min_lateral_recall: float
) -> str | None:
    """Register the evaluated model when its test metrics pass the gate."""
    logger = get_run_logger()
    metrics = read_metrics(repo / EVALUATION_FILE)
    gate = check_gate(metrics, min_accuracy, min_lateral_recall)
    if not gate.passed:
        logger.warning("gate: not registering %s: %s", name, "; ".join(gate.reasons))
        return None
    version = register_model(repo, name, metrics)
    logger.info("gate passed: %s registered as %s", name, version)
    return version


@task(retries=2, retry_delay_seconds=[5, 20])
def push_to_remote(repo: Path) -> None:
    """Push data and weights to the DVC remote; retried, since remotes fail."""
    logger = get_run_logger()
    pipeline.push_outputs(repo, logger.info)


def describe_run(metrics: dict[str, object], version: str | None) -> str:
    """Write the Markdown report attached to the flow run."""
    decision = f"registered as **{version}**" if version else "**not registered**"
    per_class = metrics["per_class"]
    rows = "\n".join(
        f"| {name} | {v['precision']} | {v['recall']} | {v['f1-score']} | "
        f"{int(v['support'])} |"
        for name, v in per_class.items()
    )
    return (
        f"# Training pipeline run\n\nModel {decision}.\n\n"
        f"Test accuracy {metrics['accuracy']}, ROC AUC {metrics['roc_auc']}, "
        f"{metrics['test_images']} test images.\n\n"
        "| view | precision | recall | F1 | images |\n|---|---|---|---|---|\n"
        f"{rows}\n\nConfusion matrix (rows true, columns predicted): "
        f"`{json.dumps(metrics['confusion_matrix'])}`\n"
    )


@flow(name="training-pipeline", log_prints=False)
def training_pipeline(repo: str = ".", push: bool = True) -> dict[str, object]:
    """Run the whole pipeline in ``repo`` and return metrics and version."""
    root = Path(repo).resolve()
    params = load_params(root / "params.yaml")

    for stage in pipeline.STAGES:
        reproduce_stage(root, stage)

    gate = params.register
    version = register_if_gate_passes(
        root, gate.model_name, gate.min_accuracy, gate.min_lateral_recall
    )
    if push:
        push_to_remote(root)

    metrics = read_metrics(root / EVALUATION_FILE)
    create_markdown_artifact(
        describe_run(metrics, version), key="training-pipeline-report"
    )
    return {"version": version, "metrics": metrics}
