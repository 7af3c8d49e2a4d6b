"""Stage ``evaluate``: measure the trained model on the held-out test subset only.

Writes ``metrics/evaluation.json`` (a DVC metric), ``metrics/roc.csv`` and
``metrics/test_predictions.csv`` (DVC plot data) and three PNGs in ``reports/``.
The test subset never influenced training, checkpoint selection or the
calibration temperature, which was fitted on validation and is applied here
as ``predict`` applies it; the expected calibration error is reported with and
without it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    roc_auc_score,
    roc_curve,
)

from tasks import atomic, reports
from tasks.calibration import apply_temperature, expected_calibration_error
from tasks.config import load_params
from tasks.dataset import make_dataset, read_subset
from tasks.ingest import PREPARED_DIR
from tasks.model import load_classifier
from tasks.paths import MODEL_FILE
from tasks.split import SPLIT_FILE

log = logging.getLogger(__name__)

EVALUATION_FILE = Path("metrics/evaluation.json")
ROC_FILE = Path("metrics/roc.csv")
PREDICTIONS_FILE = Path("metrics/test_predictions.csv")
REPORTS_DIR = Path("reports")


def summarise_predictions(
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: tuple[str, ...],
    threshold: float,
) -> dict[str, object]:
    """Compute accuracy, per-view precision/recall/F1, ROC AUC and the matrix."""
    predicted = (probabilities >= threshold).astype(int)
    truth = labels.astype(int)
    report = classification_report(
        truth,
        predicted,
        labels=[0, 1],
        target_names=list(classes),
        output_dict=True,
        zero_division=0,
    )
    per_class = {
        name: {
            key: round(float(report[name][key]), 4)
            for key in ("precision", "recall", "f1-score", "support")
        }
        for name in classes
    }
    both_present = len(np.unique(truth)) == 2
    return {
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "roc_auc": round(float(roc_auc_score(truth, probabilities)), 4)
        if both_present
        else None,
        "lateral_recall": per_class[classes[1]]["recall"],
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(truth, predicted, labels=[0, 1]).tolist(),
        "test_images": int(len(truth)),
        "threshold": threshold,
    }


def evaluate_classifier(
    split_file: Path,
    prepared_dir: Path,
    model_file: Path,
    threshold: float,
    grid_images: int,
    reports_dir: Path = REPORTS_DIR,
) -> tuple[dict[str, object], pd.DataFrame, pd.DataFrame]:
    """Predict the test subset; return metrics, per-image predictions and ROC.

    Probabilities are calibrated with the model's saved temperature; the
    metrics report the calibration error with and without it.
    """
    classifier = load_classifier(model_file)
    classes = classifier.classes
    paths, labels = read_subset(split_file, prepared_dir, "test", classes)
    dataset = make_dataset(paths, labels, 32)
    raw = classifier.model.predict(dataset, verbose=0)[:, 0]
    probabilities = apply_temperature(raw, classifier.temperature)
    metrics = summarise_predictions(labels, probabilities, classes, threshold)
    metrics |= {
        "ece": round(expected_calibration_error(labels, probabilities), 5),
        "ece_uncalibrated": round(expected_calibration_error(labels, raw), 5),
        "temperature": classifier.temperature,
    }
    predictions = pd.DataFrame(
        {
            "path": paths,
            "label": [classes[int(i)] for i in labels],
            "predicted": [classes[int(p >= threshold)] for p in probabilities],
            "probability_lateral": np.round(probabilities, 5),
        }
    )
    fpr, tpr, cut = roc_curve(labels.astype(int), probabilities)
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(cut, 1.0)})
    _draw_reports(metrics, predictions, roc, classes, grid_images, reports_dir)
    return metrics, predictions, roc


def _draw_reports(
    metrics: dict[str, object],
    predictions: pd.DataFrame,
    roc: pd.DataFrame,
    classes: tuple[str, ...],
    grid_images: int,
    reports_dir: Path,
) -> None:
    reports.plot_confusion_matrix(
        metrics["confusion_matrix"], classes, reports_dir / "confusion_matrix.png"
    )
    reports.plot_roc_curve(
        roc,
        metrics["roc_auc"] or float("nan"),
        classes[1],
        reports_dir / "roc_curve.png",
    )
    right = predictions["label"] == predictions["predicted"]
    turn = predictions.groupby("label").cumcount()
    wrong_first = predictions.assign(right=right, turn=turn).sort_values(
        ["right", "turn", "label"], kind="stable"
    )
    reports.plot_prediction_grid(
        wrong_first.head(grid_images), 4, reports_dir / "test_grid.png"
    )


def main() -> None:
    """Run the stage with the settings in ``params.yaml``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    params = load_params()
    metrics, predictions, roc = evaluate_classifier(
        SPLIT_FILE,
        PREPARED_DIR,
        MODEL_FILE,
        params.evaluate.threshold,
        params.evaluate.grid_images,
    )
    predictions = predictions.assign(
        image=predictions["path"].map(lambda p: Path(p).name)
    ).drop(columns="path")
    atomic.write_json(EVALUATION_FILE, metrics)
    atomic.write_csv(PREDICTIONS_FILE, predictions)
    atomic.write_csv(ROC_FILE, roc)
    log.info(
        "evaluate: accuracy %.4f, lateral recall %.4f, ROC AUC %s, ECE %.4f "
        "(T = %s) on %d test images",
        metrics["accuracy"],
        metrics["lateral_recall"],
        metrics["roc_auc"],
        metrics["ece"],
        metrics["temperature"],
        metrics["test_images"],
    )


if __name__ == "__main__":
    main()
