"""Tests for tasks.pixels: bounded-memory array steps with known values."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tasks.pixels import (
    block_mean,
    intensity_figures,
    pad_and_resize,
    reduction_factor,
    to_uint8,
)


def test_pad_and_resize_centres_wide_image_on_black():
    wide = np.full((2, 4), 200, dtype=np.uint8)

    square = pad_and_resize(wide, 4)

    expected = np.zeros((4, 4), dtype=np.uint8)
    expected[1:3] = 200
    np.testing.assert_array_equal(square, expected)


@pytest.mark.parametrize(
    ("width", "height", "size", "expected"),
    [
        (512, 512, 256, 1),
        (1023, 700, 256, 1),
        (1024, 700, 256, 2),
        (4000, 3000, 256, 7),
    ],
)
def test_reduction_factor_keeps_long_side_at_twice_size(width, height, size, expected):
    assert reduction_factor(width, height, size) == expected


def test_block_mean_averages_whole_blocks_and_drops_edges():
    pixels = np.arange(30, dtype=np.uint16).reshape(5, 6)

    reduced = block_mean(pixels, 2)

    np.testing.assert_array_equal(reduced, [[3.5, 5.5, 7.5], [15.5, 17.5, 19.5]])
    assert reduced.dtype == np.float32


def test_to_uint8_keeps_8_bit_and_stretches_float():
    grey = np.array([[0, 128, 255]], dtype=np.uint8)

    assert to_uint8(grey) is grey
    np.testing.assert_array_equal(
        to_uint8(np.array([[-1.0, 0.0, 1.0]])), [[0, 128, 255]]
    )


def test_block_mean_reads_pillow_image_like_array():
    pixels = np.arange(64 * 48, dtype=np.uint16).reshape(48, 64)

    from_image = block_mean(Image.fromarray(pixels), 4)

    np.testing.assert_array_equal(from_image, block_mean(pixels, 4))


def test_intensity_figures_match_numpy():
    scaled = np.array([[0, 255, 100, 100]], dtype=np.uint8)

    mean, std, clipped = intensity_figures(scaled)

    assert mean == pytest.approx(scaled.mean())
    assert std == pytest.approx(scaled.std())
    assert clipped == 0.5
