"""Epoch backups: what a restarted fit gets back, and finished phases."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from tasks.resume import (
    EpochBackup,
    discard,
    finished_phase,
    record_phase,
    run_folder,
)


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, "sigmoid")])
    model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy")
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.float32)


def _fit(model: keras.Model, folder: Path, epochs: int) -> EpochBackup:
    callbacks = {
        "early_stopping": keras.callbacks.EarlyStopping(patience=50),
        "reduce_lr": keras.callbacks.ReduceLROnPlateau(patience=50),
    }
    backup = EpochBackup(folder, callbacks, lambda: 1.0)
    x, y = _data()
    model.fit(
        x,
        y,
        validation_data=(x, y),
        epochs=epochs,
        verbose=0,
        initial_epoch=backup.completed_epochs,
        callbacks=[*callbacks.values(), backup],
    )
    return backup


def test_run_folder_depends_on_every_fingerprint_value(tmp_path: Path):
    first = run_folder(tmp_path, {"seed": 1, "train": {"epochs": 4}})
    assert first == run_folder(tmp_path, {"train": {"epochs": 4}, "seed": 1})
    assert first != run_folder(tmp_path, {"seed": 1, "train": {"epochs": 5}})
    assert first.parent == tmp_path


def test_epoch_backup_commits_each_epoch_and_keeps_only_named_files(tmp_path: Path):
    backup = _fit(_model(), tmp_path, 3)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epoch"] == 3
    assert [row["epoch"] for row in state["history"]] == [1, 2, 3]
    assert {p.name for p in tmp_path.iterdir()} == {
        "state.json",
        state["latest"],
        state["best_file"],
    }
    assert backup.history()["elapsed_seconds"].tolist() == [1.0, 1.0, 1.0]


def test_epoch_backup_restart_continues_with_weights_and_counters(tmp_path: Path):
    model = _model()
    _fit(model, tmp_path, 2)
    weights_after_two = model.get_weights()
    state = json.loads((tmp_path / "state.json").read_text())
    state["callbacks"]["early_stopping"]["wait"] = 7
    (tmp_path / "state.json").write_text(json.dumps(state))

    restarted = _model()  # fresh weights, as in a new process
    callbacks = {
        "early_stopping": keras.callbacks.EarlyStopping(patience=50),
        "reduce_lr": keras.callbacks.ReduceLROnPlateau(patience=50),
    }
    backup = EpochBackup(tmp_path, callbacks, lambda: 0.0)
    backup.set_model(restarted)
    backup.on_train_begin()

    assert backup.completed_epochs == 2
    for restored, saved in zip(restarted.get_weights(), weights_after_two, strict=True):
        np.testing.assert_array_equal(restored, saved)
    assert callbacks["early_stopping"].wait == 7
    assert int(restarted.optimizer.iterations) == int(model.optimizer.iterations)


def test_epoch_backup_resumed_fit_runs_only_the_missing_epochs(tmp_path: Path):
    _fit(_model(), tmp_path, 2)
    backup = _fit(_model(), tmp_path, 5)
    assert backup.history()["epoch"].tolist() == [1, 2, 3, 4, 5]


def test_epoch_backup_restore_best_loads_the_lowest_validation_loss(tmp_path: Path):
    model = _model()
    backup = _fit(model, tmp_path, 4)
    history = backup.history()
    backup.restore_best()
    x, y = _data()
    loss = model.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(history["val_loss"].min(), rel=1e-5)


def test_record_phase_then_finished_phase_restores_weights_and_history(tmp_path):
    model = _model()
    (tmp_path / "frozen").mkdir()
    history = pd.DataFrame({"epoch": [1, 2], "val_loss": [0.5, 0.4]})
    record_phase(tmp_path, "frozen", model, history)
    assert not (tmp_path / "frozen").exists()

    other = _model()
    other.set_weights([np.zeros_like(w) for w in other.get_weights()])
    loaded = finished_phase(tmp_path, "frozen", other)

    pd.testing.assert_frame_equal(loaded, history)
    for got, want in zip(other.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert finished_phase(tmp_path, "fine_tune", other) is None
    discard(tmp_path)
    assert not tmp_path.exists()
