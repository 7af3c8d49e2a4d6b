"""Generated radiograph-like images with a known view, for fast tests.

A "frontal" image shows two dark lung fields side by side inside a bright
torso; a "lateral" one shows a single lung field and a spine line at one side.
The difference is easy to learn, so a tiny model trained for an epoch or two
separates them, and a test can assert on real predictions.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("frontal", "lateral")


def draw_view(view: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Return a uint8 image of ``view`` with a little random jitter and noise."""
    rows, cols = np.mgrid[0:size, 0:size] / size
    image = np.full((size, size), 200.0)
    jitter = rng.uniform(-0.03, 0.03, size=2)
    if view == "frontal":
        centres = [
            (0.5 + jitter[0], 0.32 + jitter[1]),
            (0.5 + jitter[0], 0.68 + jitter[1]),
        ]
        radii = (0.3, 0.13)
    else:
        centres = [(0.5 + jitter[0], 0.45 + jitter[1])]
        radii = (0.32, 0.25)
        image[:, int(size * 0.8) : int(size * 0.86)] = 250.0
    for row, col in centres:
        inside = ((rows - row) / radii[0]) ** 2 + ((cols - col) / radii[1]) ** 2 <= 1
        image[inside] = 60.0
    image += rng.normal(0, 8, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_class_folders(
    root: Path, per_class: int, size: int = 96, seed: int = 0
) -> Path:
    """Write ``per_class`` PNGs into ``root/<view>/`` for both views."""
    rng = np.random.default_rng(seed)
    for view in CLASSES:
        (root / view).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            Image.fromarray(draw_view(view, size, rng)).save(
                root / view / f"{view}-{index:03d}.png"
            )
    return root


def write_manifest_source(
    root: Path, per_class: int, size: int = 96, seed: int = 0, per_patient: int = 2
) -> Path:
    """Write images plus ``manifest.csv`` (path,label,patient_id) under ``root``.

    Every ``per_patient`` consecutive images of a view share a patient id.
    """
    write_class_folders(root, per_class, size, seed)
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "patient_id"])
        for view in CLASSES:
            for index in range(per_class):
                patient = f"{view}-patient-{index // per_patient}"
                writer.writerow([f"{view}/{view}-{index:03d}.png", view, patient])
    return manifest
