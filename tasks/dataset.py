"""The ``tf.data`` input pipeline shared by training, evaluation and benchmarks.

Prepared radiographs are small greyscale PNGs; they are decoded in parallel,
cached in memory after the first epoch, shuffled, batched and prefetched so
that the two CPU cores spend their time on the model rather than on I/O.
Pixel values stay 0-255 here: scaling lives inside the model, so a saved model
carries its own preprocessing into ``predict``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf


def read_subset(
    split_file: Path, prepared_dir: Path, subset: str, classes: tuple[str, ...]
) -> tuple[list[str], np.ndarray]:
    """Return the PNG paths and class indices of one subset of the split.

    Raises:
        ValueError: the subset is empty or holds a label outside ``classes``.
    """
    split = pd.read_csv(split_file, dtype={"patient_hash": str})
    rows = split[split["subset"] == subset]
    if rows.empty:
        raise ValueError(f"{split_file}: subset '{subset}' has no images")
    unknown = sorted(set(rows["label"]) - set(classes))
    if unknown:
        raise ValueError(f"{split_file}: labels {unknown} are not in {list(classes)}")
    paths = [str(prepared_dir / image) for image in rows["image"]]
    labels = rows["label"].map({name: i for i, name in enumerate(classes)})
    return paths, labels.to_numpy(dtype=np.float32)


def decode_png(path: tf.Tensor) -> tf.Tensor:
    """Read one prepared PNG as a float32 (height, width, 1) tensor in 0-255."""
    pixels = tf.io.decode_png(tf.io.read_file(path), channels=1)
    return tf.cast(pixels, tf.float32)


def make_dataset(
    paths: list[str],
    labels: np.ndarray,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
) -> tf.data.Dataset:
    """Build a batched dataset of (image, label) pairs.

    Args:
        shuffle: reshuffle every epoch (training only); evaluation keeps order
            so predictions line up with ``paths``.
    """
    images = tf.data.Dataset.from_tensor_slices(paths).map(
        decode_png, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    dataset = tf.data.Dataset.zip(
        images, tf.data.Dataset.from_tensor_slices(labels)
    ).cache()
    if shuffle:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
