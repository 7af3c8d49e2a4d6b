"""Training on generated views: phases, offline weights, resume, determinism."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks import backbones
from tasks.model import load_classifier
from tasks.train import balanced_class_weights, train_classifier
from tests.conftest import REPO_ROOT
from tests.tasks.tiny_models import (
    IMAGE_SIZE,
    SHIPPED_MOBILENET,
    tiny_settings,
    train_tiny_classifier,
    write_prepared_split,
)

CLASSES = ("frontal", "lateral")


def _train(root: Path, settings, seed: int = 7, backup_root: Path | None = None):
    return train_tiny_classifier(root, settings, seed, backup_root)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([0, 0, 0, 1], {0: 4 / 6, 1: 2.0}),
        ([0, 1], {0: 1.0, 1: 1.0}),
        ([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], {0: 10 / 16, 1: 2.5}),
    ],
)
def test_balanced_class_weights_equalise_total_weight_per_class(labels, expected):
    weights = balanced_class_weights(np.array(labels, dtype=np.float32))
    assert weights == pytest.approx(expected)


@pytest.mark.slow
def test_train_classifier_learns_generated_views(tmp_path: Path):
    model_file, history, summary = _train(tmp_path, tiny_settings(epochs=6))

    assert history["val_accuracy"].max() >= 0.875
    assert list(history["epoch"]) == list(range(1, len(history) + 1))
    assert summary["epochs_run"] == len(history) == 6
    classifier = load_classifier(model_file)
    assert classifier.classes == CLASSES
    assert classifier.temperature == summary["temperature"] > 0
    assert not any((tmp_path / "backup").iterdir())  # backups go once saved


@pytest.mark.slow
def test_train_classifier_trains_head_on_features_then_fine_tunes(tmp_path: Path):
    settings = tiny_settings(
        architecture="mobilenet",
        weights=str(REPO_ROOT / SHIPPED_MOBILENET),
        input_size=64,
        epochs=3,
        learning_rate=0.01,
        fine_tune_layers=6,
        fine_tune_epochs=2,
    )
    model_file, history, _ = _train(tmp_path, settings)

    assert list(history["phase"]) == ["frozen"] * 3 + ["fine_tune"] * 2
    assert list(history["epoch"]) == [1, 2, 3, 4, 5]
    assert history["val_accuracy"].iloc[-1] >= 0.875
    assert load_classifier(model_file).model.get_layer("backbone") is not None


def test_train_classifier_offline_imagenet_fails_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(backbones, "can_reach_keras_storage", lambda: False)
    settings = tiny_settings(architecture="mobilenet", weights="imagenet")
    missing = tmp_path / "no-split-yet.csv"

    with pytest.raises(FileNotFoundError) as raised:
        train_classifier(
            missing,
            tmp_path,
            tmp_path / "model.keras",
            CLASSES,
            IMAGE_SIZE,
            settings,
            0,
            tmp_path / "backup",
        )
    message = str(raised.value)
    assert "mobilenet_2_5_224_tf_no_top.h5" in message
    assert str(tmp_path / "keras" / "models") in message
    assert "data/weights/mobilenet_2_5_224_tf_no_top.h5" in message
    assert not (tmp_path / "backup").exists()
    assert not (tmp_path / "model.keras").exists()


# Runs one training whose epochs end slowly, so the test can kill it mid-way.
_KILLED_RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import keras
    import tasks.phases
    from tests.tasks.test_train import _train
    from tests.tasks.tiny_models import tiny_settings

    class SlowEpochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            time.sleep(0.5)

    make_callbacks = tasks.phases.make_callbacks
    tasks.phases.make_callbacks = lambda s: {**make_callbacks(s), "slow": SlowEpochs()}
    _train(Path(sys.argv[1]), tiny_settings(epochs=8))
    """
)


def _wait_for_epoch(backup_root: Path, epoch: int, process, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for state in backup_root.glob("*/train/state.json"):
            done = json.loads(state.read_text())["epoch"]
            if done >= epoch:
                return done
        time.sleep(0.05)
    raise AssertionError(f"training never finished epoch {epoch}: {process.poll()}")


@pytest.mark.slow
def test_train_classifier_resumes_after_sigkill(tmp_path: Path):
    write_prepared_split(tmp_path)
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, str(tmp_path)],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_epoch(tmp_path / "backup", 2, process, timeout=120)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    state_file = next((tmp_path / "backup").glob("*/train/state.json"))
    killed_after = json.loads(state_file.read_text())["epoch"]
    assert 2 <= killed_after < 8
    assert not (tmp_path / "models").exists()  # no half-written model

    model_file, history, summary = _train(tmp_path, tiny_settings(epochs=8))

    assert summary["resumed_after_epoch"] == {"train": killed_after}
    assert list(history["epoch"]) == list(range(1, 9))
    assert history["val_accuracy"].iloc[-1] >= 0.875
    assert load_classifier(model_file).classes == CLASSES
    assert not state_file.exists()


@pytest.mark.slow
def test_train_classifier_same_seed_gives_same_metrics(tmp_path: Path):
    write_prepared_split(tmp_path / "data")
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / "prepared").symlink_to(tmp_path / "data" / "prepared")
    (tmp_path / "second" / "split").symlink_to(tmp_path / "data" / "split")
    columns = ["loss", "val_loss", "val_accuracy"]

    runs = [
        _train(tmp_path / folder, tiny_settings(epochs=3), seed=11)[1][columns]
        for folder in ("data", "second")
    ]

    pd.testing.assert_frame_equal(runs[0], runs[1], atol=1e-6, rtol=0)
