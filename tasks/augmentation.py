"""Random changes to a radiograph, applied inside the model during training only.

They are Keras preprocessing layers, so they run in the training graph on the
batches ``fit`` draws and are skipped whenever the model is called with
``training=False``: in validation, evaluation and ``predict``. They act on the
0-255 values after the model's resizing and before any scaling.

The magnitudes stand for how one chest radiograph differs from the next:
patient positioning (rotation up to about 7 degrees, shift up to 5 % of the
side, zoom up to 10 %) and exposure and detector response (brightness and
contrast up to 10 %). Uncovered borders are filled with black, as ingest pads
images to a square.

Horizontal flip keeps this task's label: a mirrored frontal is still frontal
and a mirrored lateral looks like the opposite lateral projection, which
hospitals also take. It is offered as ``train.horizontal_flip``.
"""

from __future__ import annotations

import keras
from keras import layers


def augmentation_block(horizontal_flip: bool, seed: int) -> keras.Sequential:
    """Return the random changes one radiograph plausibly shows between exposures.

    Small rotation, shift and zoom stand for positioning; brightness and
    contrast for exposure and detector. Empty space is filled with black, as
    ingest pads. A horizontal flip keeps the view (a mirrored frontal is still
    frontal, a mirrored lateral is the other lateral projection), so it is
    offered as ``train.horizontal_flip``.
    """
    steps = [
        layers.RandomRotation(0.02, fill_mode="constant", seed=seed),  # +-7 deg
        layers.RandomTranslation(0.05, 0.05, fill_mode="constant", seed=seed + 1),
        layers.RandomZoom(0.1, fill_mode="constant", seed=seed + 2),
        layers.RandomBrightness(0.1, value_range=(0, 255), seed=seed + 3),
        layers.RandomContrast(0.1, value_range=(0, 255), seed=seed + 4),
    ]
    if horizontal_flip:
        steps.insert(0, layers.RandomFlip("horizontal", seed=seed + 5))
    return keras.Sequential(steps, name="augment")
