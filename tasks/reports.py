"""Pictures of an evaluation that a radiologist or an auditor can read at a glance."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from tasks import atomic  # noqa: E402


def _save(figure: plt.Figure, target: Path) -> None:
    with atomic.atomic_path(target, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)


def plot_confusion_matrix(
    matrix: list[list[int]], classes: tuple[str, ...], target: Path
) -> None:
    """Draw counts of true view (rows) against predicted view (columns)."""
    figure, axes = plt.subplots(figsize=(4, 3.6))
    axes.imshow(np.asarray(matrix), cmap="Blues")
    for row, values in enumerate(matrix):
        for column, count in enumerate(values):
            axes.text(column, row, str(count), ha="center", va="center", fontsize=14)
    axes.set_xticks(range(len(classes)), classes)
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Test set confusion matrix")
    _save(figure, target)


def plot_roc_curve(roc: pd.DataFrame, auc: float, positive: str, target: Path) -> None:
    """Draw the ROC curve of the positive view against chance."""
    figure, axes = plt.subplots(figsize=(4, 4))
    axes.plot(roc["fpr"], roc["tpr"], label=f"AUC = {auc:.3f}")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel(f"true positive rate ({positive})")
    axes.set_title("Test set ROC")
    axes.legend(loc="lower right")
    _save(figure, target)


def plot_prediction_grid(predictions: pd.DataFrame, columns: int, target: Path) -> None:
    """Show test images titled ``predicted (true)``: green when right, red when wrong.

    Args:
        predictions: rows with ``path``, ``label`` and ``predicted``; mistakes
            should come first so that they are never left out of the grid.
    """
    rows = max(1, -(-len(predictions) // columns))
    figure, grid = plt.subplots(rows, columns, figsize=(2 * columns, 2.2 * rows))
    for axes in np.ravel(grid):
        axes.axis("off")
    for axes, row in zip(np.ravel(grid), predictions.itertuples(), strict=False):
        axes.imshow(np.asarray(Image.open(row.path)), cmap="gray", vmin=0, vmax=255)
        colour = "green" if row.predicted == row.label else "red"
        axes.set_title(f"{row.predicted} ({row.label})", color=colour, fontsize=9)
    _save(figure, target)
