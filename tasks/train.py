"""Stage ``train``: fit the classifier on the train subset, select on validation.

The weights are checked first, so an offline machine fails before any work.
Training runs in phases (:mod:`tasks.phases`) that resume after a kill
(:mod:`tasks.resume`); the temperature that calibrates the model's
probabilities is fitted on validation (:mod:`tasks.calibration`); the model
file is written once, whole. Class weights make a missed lateral cost as much
in total as a missed frontal, because laterals are the scarce class.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tasks import atomic, resume
from tasks.backbones import resolve_weights
from tasks.calibration import calibrate
from tasks.config import TrainParams, load_params
from tasks.dataset import make_dataset, read_subset
from tasks.digests import file_sha256
from tasks.ingest import PREPARED_DIR
from tasks.model import ModelSpec, build_model, save_classifier
from tasks.paths import MODEL_FILE
from tasks.phases import PhaseRunner, run_phases
from tasks.split import SPLIT_FILE

log = logging.getLogger(__name__)

HISTORY_FILE = Path("metrics/history.csv")
TRAIN_SUMMARY_FILE = Path("metrics/train.json")


def balanced_class_weights(labels: np.ndarray) -> dict[int, float]:
    """Weight each class by n_images / (n_classes * n_images_of_class)."""
    indices, counts = np.unique(labels.astype(int), return_counts=True)
    total, n_classes = counts.sum(), len(counts)
    return {
        int(index): float(total / (n_classes * count))
        for index, count in zip(indices, counts, strict=True)
    }


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras and ask TF for deterministic ops."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train_classifier(
    split_file: Path,
    prepared_dir: Path,
    model_file: Path,
    classes: tuple[str, ...],
    image_size: int,
    settings: TrainParams,
    seed: int,
    backup_root: Path = resume.BACKUP_ROOT,
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Train, calibrate on validation, then save the model beside its class map.

    Raises:
        FileNotFoundError: the weights cannot be had (checked before anything
            else, so an offline machine fails at once).

    Returns:
        The per-epoch history and a summary (epochs, best epoch, seconds,
        training images per second, temperature, resumed phases).
    """
    weights = resolve_weights(
        settings.architecture, settings.weights, settings.input_size
    )
    started = time.perf_counter()
    make_deterministic(seed)
    train = read_subset(split_file, prepared_dir, "train", classes)
    validation = read_subset(split_file, prepared_dir, "validation", classes)
    folder = resume.run_folder(
        backup_root, _fingerprint(split_file, image_size, settings, seed)
    )
    model = build_model(_spec(settings, image_size, seed, weights))
    weights_by_class = balanced_class_weights(train[1])
    log.info(
        "train: %s on %d train / %d validation images, class weights %s, backup %s",
        settings.architecture,
        len(train[0]),
        len(validation[0]),
        weights_by_class,
        folder,
    )
    runner = PhaseRunner(model, settings, weights_by_class, folder, seed, started)
    history = run_phases(runner, settings, train, validation)
    p_validation = model.predict(make_dataset(*validation, 32), verbose=0)[:, 0]
    calibration = calibrate(validation[1], p_validation)
    save_classifier(model, model_file, classes, calibration)
    resume.discard(folder)
    seconds = time.perf_counter() - started
    return history, _summarise(history, seconds, len(train[0]), calibration, runner)


def _spec(
    settings: TrainParams, image_size: int, seed: int, weights: str | None
) -> ModelSpec:
    return ModelSpec(
        settings.architecture,
        image_size,
        settings.input_size,
        settings.dropout,
        seed,
        weights,
        settings.augment,
        settings.horizontal_flip,
    )


def _fingerprint(
    split_file: Path, image_size: int, settings: TrainParams, seed: int
) -> dict[str, object]:
    weights = Path(settings.weights)
    return {
        "split": file_sha256(split_file),
        "weights": file_sha256(weights) if weights.is_file() else str(weights),
        "image_size": image_size,
        "seed": seed,
        "train": asdict(settings),
    }


def _summarise(
    history: pd.DataFrame,
    seconds: float,
    n_train: int,
    calibration: dict[str, float],
    runner: PhaseRunner,
) -> dict[str, object]:
    last_phase = history[history["phase"] == history["phase"].iloc[-1]]
    return {
        "epochs_run": len(history),
        "best_epoch": int(history.loc[last_phase["val_loss"].idxmin(), "epoch"]),
        "best_val_loss": float(last_phase["val_loss"].min()),
        "seconds": round(seconds, 2),
        "train_images_per_second": round(n_train * len(history) / seconds, 1),
        "temperature": calibration["temperature"],
        "validation_ece": calibration["validation_ece"],
        "resumed_after_epoch": runner.resumed,
    }


def main() -> None:
    """Run the stage with the settings in ``params.yaml``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    params = load_params()
    history, summary = train_classifier(
        SPLIT_FILE,
        PREPARED_DIR,
        MODEL_FILE,
        params.base.classes,
        params.base.image_size,
        params.train,
        params.base.seed,
    )
    atomic.write_csv(HISTORY_FILE, history)
    atomic.write_json(TRAIN_SUMMARY_FILE, summary)
    log.info("train: %s", summary)


if __name__ == "__main__":
    main()
