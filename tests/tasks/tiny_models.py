"""Tiny prepared datasets and settings shared by the training-step tests.

Images are the generated views of :mod:`tests.synthetic`, written as prepared
PNGs with a ready-made split, so a test trains a real model in a few seconds
without running ingest or split.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from tasks.config import TrainParams
from tasks.train import train_classifier
from tests.synthetic import CLASSES, draw_view

IMAGE_SIZE = 64
SUBSET_CYCLE = ("train", "train", "train", "train", "validation", "test")
SHIPPED_MOBILENET = "data/weights/mobilenet_2_5_224_tf_no_top.h5"


def write_prepared_split(
    root: Path, per_class: int = 24, size: int = IMAGE_SIZE, seed: int = 0
) -> tuple[Path, Path]:
    """Write prepared PNGs and ``split.csv`` under ``root``.

    Returns:
        The prepared folder and the split file. Each view is split 4:1:1 into
        train, validation and test.
    """
    prepared = root / "prepared"
    (prepared / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for view in CLASSES:
        for index in range(per_class):
            image = f"images/{view}-{index:03d}.png"
            Image.fromarray(draw_view(view, size, rng)).save(prepared / image)
            subset = SUBSET_CYCLE[index % len(SUBSET_CYCLE)]
            rows.append(
                {
                    "image": image,
                    "label": view,
                    "subset": subset,
                    "patient_hash": f"{view}-{index}",
                }
            )
    split_file = root / "split" / "split.csv"
    split_file.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(split_file, index=False)
    return prepared, split_file


def tiny_settings(**overrides: object) -> TrainParams:
    """Return training settings small enough for a test, with ``overrides``."""
    settings = TrainParams(
        architecture="simple_cnn",
        input_size=32,
        batch_size=8,
        epochs=4,
        learning_rate=0.003,
        dropout=0.1,
        early_stopping_patience=20,
        reduce_lr_patience=20,
        reduce_lr_factor=0.5,
        weights="none",
        augment=False,
        horizontal_flip=False,
        fine_tune_layers=0,
        fine_tune_epochs=2,
        fine_tune_learning_rate=0.0001,
    )
    return dataclasses.replace(settings, **overrides)


def write_real_prepared_split(
    root: Path, per_class: int = 12, size: int = IMAGE_SIZE
) -> tuple[Path, Path]:
    """Prepare the first ``per_class`` bundled radiographs of each view, 4:1:1.

    Pixels come from :func:`tasks.radiograph.prepare_radiograph`, the function
    ingest and predict share, saved as PNG as ingest saves them.
    """
    from tasks.radiograph import prepare_radiograph
    from tests.conftest import SAMPLE_DIR

    prepared = root / "prepared"
    (prepared / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for view in CLASSES:
        for index, source in enumerate(
            sorted((SAMPLE_DIR / view).iterdir())[:per_class]
        ):
            image = f"images/{view}-{index:03d}.png"
            pixels = prepare_radiograph(source, size).pixels
            Image.fromarray(pixels).save(prepared / image)
            subset = SUBSET_CYCLE[index % len(SUBSET_CYCLE)]
            rows.append(
                {
                    "image": image,
                    "label": view,
                    "subset": subset,
                    "patient_hash": source.stem,
                }
            )
    split_file = root / "split" / "split.csv"
    split_file.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(split_file, index=False)
    return prepared, split_file


def train_tiny_classifier(
    root: Path, settings: TrainParams, seed: int, backup_root: Path | None = None
) -> tuple[Path, pd.DataFrame, dict[str, object]]:
    """Train on the prepared split under ``root``, writing a generated one if absent.

    Returns:
        The model file, the training history and the training summary.
    """
    prepared, split_file = root / "prepared", root / "split" / "split.csv"
    if not split_file.is_file():
        write_prepared_split(root)
    model_file = root / "models" / "model.keras"
    history, summary = train_classifier(
        split_file,
        prepared,
        model_file,
        CLASSES,
        IMAGE_SIZE,
        settings,
        seed,
        backup_root or root / "backup",
    )
    return model_file, history, summary
