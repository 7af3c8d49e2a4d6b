"""Fit a model in phases, each resumable and each keeping its best epoch.

A transfer model trains first with its backbone frozen: only the new head
learns. With augmentation off the backbone would compute the same features for
an image every epoch, so they are computed once and the head trains on them
alone, which takes seconds. Then, if ``train.fine_tune_layers`` > 0, the top of
the backbone trains together with the head at the lower
``train.fine_tune_learning_rate``, so that the pretrained filters move only a
little. ``simple_cnn`` trains in one phase.

Every phase keeps the epoch with the lowest validation loss, stops early when
it stops improving and lowers the learning rate on a plateau.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tasks import resume
from tasks.config import TrainParams
from tasks.dataset import make_dataset
from tasks.model import classification_head, feature_extractor, unfreeze_top_layers

log = logging.getLogger(__name__)

Subset = tuple[list[str], np.ndarray]
FitData = tf.data.Dataset | tuple[np.ndarray, np.ndarray]


def make_callbacks(settings: TrainParams) -> dict[str, keras.callbacks.Callback]:
    """Return the early-stopping and learning-rate callbacks, by name.

    The best-epoch checkpoint is kept by :class:`tasks.resume.EpochBackup`.
    """
    return {
        "early_stopping": keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=settings.early_stopping_patience
        ),
        "reduce_lr": keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=settings.reduce_lr_factor,
            patience=settings.reduce_lr_patience,
            min_lr=1e-6,
        ),
    }


class PhaseRunner:
    """Fit the phases of one run against its backup folder and shared clock."""

    def __init__(
        self,
        model: keras.Model,
        settings: TrainParams,
        class_weights: dict[int, float],
        folder: Path,
        seed: int,
        started: float,
    ) -> None:
        self.model, self.settings, self.folder = model, settings, folder
        self.class_weights, self.seed = class_weights, seed
        self.started = started  # time.perf_counter() when the run began
        self.resumed: dict[str, int] = {}

    def finished(self, phase: str) -> pd.DataFrame | None:
        """Return the history of a phase an earlier run completed, if any."""
        return resume.finished_phase(self.folder, phase, self.model)

    def fit(
        self,
        phase: str,
        trainee: keras.Model,
        train_data: FitData,
        validation_data: FitData,
        epochs: int,
        learning_rate: float,
    ) -> pd.DataFrame:
        """Fit ``trainee`` (the model or its head) for one phase; return its history."""
        trainee.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss="binary_crossentropy",
            metrics=["accuracy", keras.metrics.AUC(name="auc")],
        )
        callbacks = make_callbacks(self.settings)
        backup = resume.EpochBackup(
            self.folder / phase,
            callbacks,
            lambda: time.perf_counter() - self.started,
        )
        if backup.completed_epochs:
            self.resumed[phase] = backup.completed_epochs
            log.info("train: %s resumes after epoch %d", phase, backup.completed_epochs)
        x, y = train_data if isinstance(train_data, tuple) else (train_data, None)
        trainee.fit(
            x,
            y,
            batch_size=self.settings.batch_size if y is not None else None,
            validation_data=validation_data,
            epochs=epochs,
            initial_epoch=backup.completed_epochs,
            class_weight=self.class_weights,
            shuffle=y is not None,  # a dataset reshuffles itself every epoch
            callbacks=[*callbacks.values(), backup],
            verbose=2,
        )
        backup.restore_best()
        history = backup.history().assign(phase=phase)
        resume.record_phase(self.folder, phase, self.model, history)
        return history


def run_phases(
    runner: PhaseRunner, settings: TrainParams, train: Subset, validation: Subset
) -> pd.DataFrame:
    """Train the frozen-backbone (or only) phase, then fine-tune if asked."""
    model = runner.model
    train_ds = make_dataset(*train, settings.batch_size, shuffle=True, seed=runner.seed)
    val_ds = make_dataset(*validation, settings.batch_size)
    first = "train" if settings.architecture == "simple_cnn" else "frozen"
    histories = [runner.finished(first)]
    if histories[0] is None and first == "frozen" and not settings.augment:
        histories[0] = _fit_head_on_features(runner, train, val_ds, validation[1])
    elif histories[0] is None:
        histories[0] = runner.fit(
            first, model, train_ds, val_ds, settings.epochs, settings.learning_rate
        )
    if first == "frozen" and settings.fine_tune_layers > 0:
        trainable = unfreeze_top_layers(model, settings.fine_tune_layers)
        log.info("train: fine-tuning %d backbone layers with weights", trainable)
        histories.append(runner.finished("fine_tune"))
        if histories[-1] is None:
            histories[-1] = runner.fit(
                "fine_tune",
                model,
                train_ds,
                val_ds,
                settings.fine_tune_epochs,
                settings.fine_tune_learning_rate,
            )
    return _number_epochs(histories)


def _fit_head_on_features(
    runner: PhaseRunner, train: Subset, val_ds: tf.data.Dataset, val_labels: np.ndarray
) -> pd.DataFrame:
    """Compute backbone features once, then train only the head on them."""
    extractor = feature_extractor(runner.model)
    ordered = make_dataset(*train, runner.settings.batch_size)
    train_features = extractor.predict(ordered, verbose=0)
    val_features = extractor.predict(val_ds, verbose=0)
    log.info("train: cached %s backbone features", train_features.shape)
    return runner.fit(
        "frozen",
        classification_head(runner.model),
        (train_features, train[1]),
        (val_features, val_labels),
        runner.settings.epochs,
        runner.settings.learning_rate,
    )


def _number_epochs(histories: list[pd.DataFrame]) -> pd.DataFrame:
    """Join phase histories with epochs counted across phases from 1."""
    history = pd.concat(histories, ignore_index=True)
    history["epoch"] = np.arange(1, len(history) + 1)
    return history
