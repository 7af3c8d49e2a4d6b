"""Images per second of our tf.data pipeline, Keras' ImageDataGenerator and PIL.

All three read the same prepared PNGs (``data/prepared``, written by the
ingest stage) at the same size, in one process, one after the other:

* PIL: ``Image.open`` + ``np.asarray`` per file, one thread: the raw decode
  rate of this machine;
* tf.data: ``tasks.dataset.make_dataset`` as training uses it (parallel
  decode, in-memory cache, shuffle, batch, prefetch), timed separately for the
  first epoch (decoding) and the later ones (from the cache);
* ImageDataGenerator: ``ImageDataGenerator(rescale=1/255).flow_from_directory``
  over the same files in class folders, grayscale, batches of the same size.

Run from the repository root after ``dvc repro split`` (or ``make run``):

    python benchmarks/input_pipeline.py [--prepared data/prepared] [--epochs 5]
        [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout first

from tasks.dataset import make_dataset  # noqa: E402


def pil_rate(paths: list[str]) -> float:
    """Return files per second decoded to arrays by PIL in this thread."""
    started = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            np.asarray(image)
    return len(paths) / (time.perf_counter() - started)


def tf_data_rates(
    paths: list[str], labels: np.ndarray, batch_size: int, epochs: int
) -> tuple[float, float, float]:
    """Return images/s of the first (decoding) epoch, the cached ones, and all."""
    dataset = make_dataset(paths, labels, batch_size, shuffle=True, seed=0)
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        for images, _ in dataset:
            images.numpy()
        seconds.append(time.perf_counter() - started)
    n = len(paths)
    return (
        n / seconds[0],
        n * (epochs - 1) / sum(seconds[1:]),
        n * epochs / sum(seconds),
    )


def generator_rate(
    manifest: pd.DataFrame, prepared: Path, size: int, batch_size: int, epochs: int
) -> float:
    """Return images/s of ``flow_from_directory`` over the same files."""
    from tensorflow.keras.preprocessing.image import ImageDataGenerator

    with tempfile.TemporaryDirectory() as folder:
        for row in manifest.itertuples():
            link = Path(folder) / row.label / Path(row.image).name
            link.parent.mkdir(exist_ok=True)
            link.symlink_to((prepared / row.image).resolve())
        flow = ImageDataGenerator(rescale=1 / 255).flow_from_directory(
            folder,
            target_size=(size, size),
            color_mode="grayscale",
            batch_size=batch_size,
            class_mode="binary",
            shuffle=True,
            seed=0,
        )
        started = time.perf_counter()
        for _ in range(epochs):
            for index in range(len(flow)):
                flow[index]
            flow.on_epoch_end()
        return len(manifest) * epochs / (time.perf_counter() - started)


def main() -> None:
    """Measure the three readers on the prepared images and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    manifest = pd.read_csv(args.prepared / "manifest.csv")
    paths = [str(args.prepared / image) for image in manifest["image"]]
    labels = (manifest["label"] != manifest["label"].iloc[0]).to_numpy(np.float32)
    size = Image.open(paths[0]).size[0]

    runs = []
    for _ in range(args.repeats):  # interleaved, so drift hits all readers alike
        runs.append(
            [
                pil_rate(paths),
                *tf_data_rates(paths, labels, args.batch_size, args.epochs),
                generator_rate(
                    manifest, args.prepared, size, args.batch_size, args.epochs
                ),
            ]
        )
    pil, first, cached, overall, generator = np.median(np.array(runs), axis=0)

    print(
        f"{len(paths)} prepared PNGs, {size}x{size} px, batch {args.batch_size}, "
        f"{args.epochs} epochs, median of {args.repeats} runs, "
        f"{os.cpu_count()} CPUs"
    )
    print("| reader | images/s | vs ImageDataGenerator |")
    print("|---|---:|---:|")
    for name, rate in [
        ("PIL decode, one thread", pil),
        ("tf.data, first epoch (decode + cache)", first),
        ("tf.data, later epochs (cached)", cached),
        (f"tf.data, all {args.epochs} epochs", overall),
        ("ImageDataGenerator.flow_from_directory", generator),
    ]:
        print(f"| {name} | {rate:,.0f} | {rate / generator:.1f}x |")
    print(
        f"tf.data first epoch / PIL decode: {first / pil:.2f}x "
        "(the first epoch includes the pipeline's start-up)"
    )


if __name__ == "__main__":
    main()
