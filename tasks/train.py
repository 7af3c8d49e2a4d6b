"""Stage ``train``: fit the classifier on the train subset, select on validation.

Callbacks follow the talk: the checkpoint keeps the epoch with the lowest
validation loss, early stopping ends a run that stopped improving, and the
learning rate halves on a plateau. Class weights make a missed lateral cost as
much in total as a missed frontal, because laterals are the scarce class.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from tasks import atomic
from tasks.config import TrainParams, load_params
from tasks.dataset import make_dataset, read_subset
from tasks.ingest import PREPARED_DIR
from tasks.model import build_model, save_classifier
from tasks.split import SPLIT_FILE

log = logging.getLogger(__name__)

MODEL_FILE = Path("models/model.keras")
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


def make_callbacks(checkpoint: Path, settings: TrainParams) -> list[keras.callbacks.Callback]:
    """Return the checkpoint, early-stopping and learning-rate callbacks."""
    return [
        keras.callbacks.ModelCheckpoint(
            checkpoint, monitor="val_loss", save_best_only=True
        ),
        keras.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=settings.early_stopping_patience,
            restore_best_weights=True,
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=settings.reduce_lr_factor,
            patience=settings.reduce_lr_patience,
            min_lr=1e-6,
        ),
    ]


def train_classifier(
    split_file: Path,
    prepared_dir: Path,
    model_file: Path,
    classes: tuple[str, ...],
    image_size: int,
    settings: TrainParams,
    seed: int,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Train, then save the best-validation-loss model beside its class map.

    Returns:
        The per-epoch history and a summary (epochs, best epoch, seconds,
        training images per second).
    """
    keras.utils.set_random_seed(seed)
    train_paths, train_labels = read_subset(split_file, prepared_dir, "train", classes)
    val_paths, val_labels = read_subset(split_file, prepared_dir, "validation", classes)
    train_ds = make_dataset(train_paths, train_labels, settings.batch_size, True, seed)
    val_ds = make_dataset(val_paths, val_labels, settings.batch_size)
    model = build_model(
        settings.architecture, image_size, settings.input_size, settings.dropout, seed
    )
    model.compile(
        optimizer=keras.optimizers.Adam(settings.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    weights = balanced_class_weights(train_labels)
    log.info(
        "train: %d train / %d validation images, class weights %s",
        len(train_paths), len(val_paths), weights,
    )
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = Path(scratch) / "best.keras"
        started = time.perf_counter()
        fitted = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=settings.epochs,
            class_weight=weights,
            callbacks=make_callbacks(checkpoint, settings),
            shuffle=False,  # the dataset reshuffles itself every epoch
            verbose=2,
        )
        seconds = time.perf_counter() - started
        best = keras.models.load_model(checkpoint, safe_mode=True)
    save_classifier(best, model_file, classes)
    history = pd.DataFrame(fitted.history).rename_axis("epoch").reset_index()
    history["epoch"] += 1
    summary = {
        "epochs_run": len(history),
        "best_epoch": int(history["val_loss"].idxmin()) + 1,
        "best_val_loss": float(history["val_loss"].min()),
        "seconds": round(seconds, 2),
        "train_images_per_second": round(len(train_paths) * len(history) / seconds, 1),
    }
    return history, summary


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
