"""The tf.data pipeline: subsets, exact decoding, order and shuffling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tasks.dataset import decode_png, make_dataset, read_subset
from tests.tasks.tiny_models import write_prepared_split

CLASSES = ("frontal", "lateral")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Twelve generated views per class with a 4:1:1 split."""
    return write_prepared_split(tmp_path_factory.mktemp("data"), per_class=12)


def test_read_subset_returns_paths_and_class_indices_in_file_order(prepared):
    prepared_dir, split_file = prepared
    paths, labels = read_subset(split_file, prepared_dir, "test", CLASSES)
    split = pd.read_csv(split_file)
    expected = split[split["subset"] == "test"]
    assert paths == [str(prepared_dir / image) for image in expected["image"]]
    assert labels.tolist() == [CLASSES.index(v) for v in expected["label"]]
    assert labels.dtype == np.float32


def test_read_subset_empty_subset_names_it(prepared):
    prepared_dir, split_file = prepared
    with pytest.raises(ValueError, match="subset 'holdout' has no images"):
        read_subset(split_file, prepared_dir, "holdout", CLASSES)


def test_read_subset_unknown_label_names_it(prepared, tmp_path: Path):
    prepared_dir, split_file = prepared
    split = pd.read_csv(split_file)
    split.loc[0, "label"] = "oblique"
    changed = tmp_path / "split.csv"
    split.to_csv(changed, index=False)
    with pytest.raises(ValueError, match=r"labels \['oblique'\] are not in"):
        read_subset(changed, prepared_dir, split.loc[0, "subset"], CLASSES)


def test_decode_png_returns_the_exact_pixels_as_float(prepared):
    prepared_dir, _ = prepared
    path = next((prepared_dir / "images").iterdir())
    decoded = decode_png(str(path)).numpy()
    assert decoded.dtype == np.float32
    assert decoded.shape == (64, 64, 1)
    assert np.array_equal(decoded[..., 0], np.asarray(Image.open(path)))


def test_make_dataset_without_shuffle_keeps_order_and_batches(prepared):
    prepared_dir, split_file = prepared
    paths, labels = read_subset(split_file, prepared_dir, "train", CLASSES)
    batches = list(make_dataset(paths, labels, batch_size=5))
    assert [len(y) for _, y in batches] == [5, 5, 5, 1]
    assert batches[0][0].shape == (5, 64, 64, 1)
    got = np.concatenate([y.numpy() for _, y in batches])
    assert np.array_equal(got, labels)
    first = np.asarray(Image.open(paths[0]), dtype=np.float32)
    assert np.array_equal(batches[0][0][0, ..., 0].numpy(), first)


def test_make_dataset_shuffle_is_seeded_and_reshuffles_each_epoch(prepared):
    prepared_dir, split_file = prepared
    paths = [str(p) for p in sorted((prepared_dir / "images").iterdir())]
    labels = np.arange(len(paths), dtype=np.float32)  # labels tag each image

    def epochs(seed: int) -> list[list[float]]:
        dataset = make_dataset(paths, labels, 64, shuffle=True, seed=seed)
        return [next(iter(dataset))[1].numpy().tolist() for _ in range(2)]

    first, again = epochs(5), epochs(5)
    assert first == again
    assert first[0] != first[1]
    assert sorted(first[0]) == labels.tolist()
