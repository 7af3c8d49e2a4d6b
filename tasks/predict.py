"""Classify radiograph files with a trained model, as ``laterality predict`` does.

Each file goes through :func:`tasks.radiograph.prepare_radiograph`, the same
function ingest uses, at the image size the model was built for, so inference
sees exactly what training saw; resizing and scaling are layers of the model.
Probabilities are calibrated with the temperature saved beside the model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.model import load_classifier
from tasks.radiograph import RadiographError, prepare_radiograph

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """The predicted view of one file and the model's probability for it."""

    path: str
    label: str
    probability: float


@dataclass(frozen=True)
class Failure:
    """A file that could not be classified, and why."""

    path: str
    reason: str


def collect_files(inputs: list[Path]) -> list[Path]:
    """Expand folders (recursively, hidden files skipped) into sorted file lists."""
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            files.extend(
                sorted(
                    p
                    for p in item.rglob("*")
                    if p.is_file() and not any(part.startswith(".") for part in p.parts)
                )
            )
        else:
            files.append(item)
    return files


def label_probabilities(
    p_positive: np.ndarray, classes: tuple[str, ...], threshold: float = 0.5
) -> list[tuple[str, float]]:
    """Turn P(second class) into (label, probability of that label) pairs."""
    return [
        (classes[1], float(p)) if p >= threshold else (classes[0], float(1 - p))
        for p in p_positive
    ]


def predict_files(
    model_path: Path, files: list[Path], batch_size: int = 32
) -> tuple[list[Prediction], list[Failure]]:
    """Classify ``files``; unreadable ones are returned as failures, not raised."""
    classifier = load_classifier(model_path)
    size = int(classifier.model.input_shape[1])
    ready, pixels, failures = [], [], []
    for path in files:
        try:
            pixels.append(prepare_radiograph(path, size).pixels)
            ready.append(path)
        except RadiographError as error:  # its message already names the file
            failures.append(Failure(str(path), f"{error.reason}: {error.detail}"))
        except OSError as error:
            failures.append(Failure(str(path), str(error)))
        except Exception as error:  # a decoder bug must cost one file, not the batch
            failures.append(Failure(str(path), f"{type(error).__name__}: {error}"))
    if not ready:
        log.info("predict: 0 classified, %d failed", len(failures))
        return [], failures
    batch = np.stack(pixels)[..., np.newaxis].astype(np.float32)
    p_positive = classifier.predict_positive(batch, batch_size)
    predictions = [
        Prediction(str(path), label, round(probability, 5))
        for path, (label, probability) in zip(
            ready, label_probabilities(p_positive, classifier.classes), strict=True
        )
    ]
    log.info("predict: %d classified, %d failed", len(predictions), len(failures))
    return predictions, failures
