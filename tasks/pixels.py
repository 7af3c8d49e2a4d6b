"""Array steps shared by every decoder: shrink, scale to 8 bits, measure, square.

Each works on one greyscale image and keeps memory bounded: large images are
averaged down a strip at a time and intensity figures come from a histogram,
so no full-size float copy of a scan is ever made.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def reduction_factor(width: int, height: int, size: int) -> int:
    """Return the whole factor that keeps the long side at least ``2 * size``."""
    return max(1, max(width, height) // (2 * size))


def block_mean(pixels: np.ndarray | Image.Image, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks into float32, a strip at a time.

    ``pixels`` is an array or a single-band Pillow image; an image is copied
    out a strip at a time too. Strips of about a million input pixels keep
    every copy small however large the image is. Edge rows and columns that
    do not fill a whole block are dropped.
    """
    if factor <= 1:
        return np.asarray(pixels, dtype=np.float32)
    width, height = _width_height(pixels)
    rows, cols = height // factor, width // factor
    reduced = np.empty((rows, cols), dtype=np.float32)
    step = max(1, 1_048_576 // (cols * factor * factor))
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        strip = _strip(pixels, start * factor, stop * factor, cols * factor)
        blocks = strip.astype(np.float32).reshape(stop - start, factor, cols, factor)
        reduced[start:stop] = blocks.mean(axis=(1, 3))
    return reduced


def _width_height(pixels: np.ndarray | Image.Image) -> tuple[int, int]:
    if isinstance(pixels, Image.Image):
        return pixels.size
    return pixels.shape[1], pixels.shape[0]


def _strip(
    pixels: np.ndarray | Image.Image, top: int, bottom: int, right: int
) -> np.ndarray:
    if isinstance(pixels, Image.Image):
        return np.asarray(pixels.crop((0, top, right, bottom)))
    return pixels[top:bottom, :right]


def intensity_figures(scaled: np.ndarray) -> tuple[float, float, float]:
    """Return mean, standard deviation and share of pixels at 0 or 255.

    Computed from Pillow's 256-bin histogram, so no wider copy of the image is
    ever made.
    """
    counts = np.array(Image.fromarray(scaled).histogram(), dtype=np.float64)
    levels = np.arange(256, dtype=np.float64)
    total = counts.sum()
    mean = float(counts @ levels / total)
    std = float(np.sqrt(counts @ (levels - mean) ** 2 / total))
    return mean, std, float((counts[0] + counts[255]) / total)


def to_uint8(grey: np.ndarray) -> np.ndarray:
    """Map an image to uint8, scaling anything wider than 8 bits by its own range."""
    if grey.dtype == np.uint8:
        return grey
    low, high = float(grey.min()), float(grey.max())
    scaled = (grey.astype(np.float32) - low) / max(high - low, 1e-6) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def pad_and_resize(grey: np.ndarray, size: int) -> np.ndarray:
    """Pad a uint8 image with black to a centred square, then resize it."""
    height, width = grey.shape
    side = max(height, width)
    square = np.zeros((side, side), dtype=np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    square[top : top + height, left : left + width] = grey
    image = Image.fromarray(square)
    resized = image.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(resized, dtype=np.uint8)
