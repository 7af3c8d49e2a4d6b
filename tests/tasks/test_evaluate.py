"""Test-set metrics on known predictions, and the evaluation of a trained model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.calibration import apply_temperature
from tasks.evaluate import evaluate_classifier, summarise_predictions
from tasks.model import class_index_path, load_classifier
from tests.conftest import REPO_ROOT
from tests.tasks.tiny_models import (
    SHIPPED_MOBILENET,
    tiny_settings,
    train_tiny_classifier,
    write_prepared_split,
    write_real_prepared_split,
)

CLASSES = ("frontal", "lateral")


@pytest.mark.parametrize(
    ("labels", "probabilities", "matrix", "accuracy", "lateral_recall"),
    [
        ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], [[2, 0], [0, 2]], 1.0, 1.0),
        ([0, 0, 0, 1, 1], [0.1, 0.7, 0.2, 0.4, 0.9], [[2, 1], [1, 1]], 0.6, 0.5),
        ([0, 1, 1, 1], [0.6, 0.5, 0.49, 0.51], [[0, 1], [1, 2]], 0.5, 0.6667),
    ],
)
def test_summarise_predictions_counts_the_confusion_matrix(
    labels, probabilities, matrix, accuracy, lateral_recall
):
    metrics = summarise_predictions(
        np.array(labels, dtype=np.float32), np.array(probabilities), CLASSES, 0.5
    )
    assert metrics["confusion_matrix"] == matrix  # rows true, columns predicted
    assert metrics["accuracy"] == accuracy
    assert metrics["lateral_recall"] == lateral_recall
    assert metrics["test_images"] == len(labels)
    assert metrics["per_class"]["frontal"]["support"] == labels.count(0)


def test_summarise_predictions_ranks_for_roc_auc():
    metrics = summarise_predictions(
        np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]), CLASSES, 0.5
    )
    assert metrics["roc_auc"] == 0.75


def test_summarise_predictions_one_view_only_has_no_roc_auc():
    metrics = summarise_predictions(
        np.zeros(3), np.array([0.1, 0.2, 0.7]), CLASSES, 0.5
    )
    assert metrics["roc_auc"] is None
    assert metrics["confusion_matrix"] == [[2, 1], [0, 0]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A small CNN trained on generated views; its prepared data and split."""
    root = tmp_path_factory.mktemp("evaluate")
    prepared, split_file = write_prepared_split(root)
    model_file, _, _ = train_tiny_classifier(root, tiny_settings(epochs=6), 5)
    return prepared, split_file, model_file


@pytest.mark.slow
def test_evaluate_classifier_reports_test_metrics_and_pictures(trained, tmp_path):
    prepared, split_file, model_file = trained
    metrics, predictions, roc = evaluate_classifier(
        split_file, prepared, model_file, 0.5, 8, tmp_path / "reports"
    )
    assert metrics["test_images"] == len(predictions) == 8
    assert np.sum(metrics["confusion_matrix"]) == 8
    assert metrics["accuracy"] >= 0.875
    assert set(predictions.columns) == {
        "path",
        "label",
        "predicted",
        "probability_lateral",
    }
    assert roc["fpr"].iloc[0] == 0
    assert roc["tpr"].iloc[-1] == 1
    for name in ("confusion_matrix.png", "roc_curve.png", "test_grid.png"):
        assert (tmp_path / "reports" / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_evaluate_classifier_applies_the_saved_temperature(trained, tmp_path):
    prepared, split_file, model_file = trained
    index = json.loads(class_index_path(model_file).read_text())
    index["calibration"] = {"temperature": 3.0}
    class_index_path(model_file).write_text(json.dumps(index))

    metrics, predictions, _ = evaluate_classifier(
        split_file, prepared, model_file, 0.5, 4, tmp_path
    )

    model = load_classifier(model_file).model
    raw = model.predict(np.stack([_png(p) for p in predictions["path"]]), verbose=0)
    expected = apply_temperature(raw[:, 0], 3.0)
    np.testing.assert_allclose(predictions["probability_lateral"], expected, atol=1e-5)
    assert metrics["temperature"] == 3.0
    assert {"ece", "ece_uncalibrated"} <= metrics.keys()


def _png(path: str) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float32)[..., np.newaxis]


@pytest.mark.slow
def test_evaluate_classifier_on_real_radiographs_with_the_shipped_backbone(tmp_path):
    prepared, split_file = write_real_prepared_split(tmp_path)
    model_file = tmp_path / "models" / "model.keras"
    settings = tiny_settings(
        architecture="mobilenet",
        weights=str(REPO_ROOT / SHIPPED_MOBILENET),
        input_size=64,
        epochs=10,
        learning_rate=0.01,
    )
    train_tiny_classifier(tmp_path, settings, 1)

    metrics, _, _ = evaluate_classifier(
        split_file, prepared, model_file, 0.5, 4, tmp_path / "reports"
    )

    assert metrics["test_images"] == 4
    assert metrics["accuracy"] >= 0.75
