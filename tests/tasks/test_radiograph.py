"""Tests for tasks.radiograph: one way to turn any supported file into pixels."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.radiograph import (
    DecodeLimits,
    RadiographError,
    decode_radiograph,
    prepare_radiograph,
    sniff_format,
)
from tests.conftest import SAMPLE_DIR
from tests.tasks.radiograph_files import encode, gradient, save

RGBA_PNG_AS_JPG = SAMPLE_DIR / "frontal" / "covid-chestxray__000001-19.jpg"
FULL_SIZE_LATERAL = SAMPLE_DIR / "lateral" / "covid-chestxray__16663_1_2.jpg"
GREY = gradient(96, 96)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(124), "PNG"),
        (b"\xff\xd8\xff\xe0" + bytes(128), "JPEG"),
        (b"II*\x00" + bytes(128), "TIFF"),
        (b"MM\x00*" + bytes(128), "TIFF"),
        (b"BM" + bytes(130), "BMP"),
        (bytes(128) + b"DICM", "DICOM"),
        (b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100", "DICOM"),
        (b"GIF89a" + bytes(126), "GIF"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP"),
        (b"%PDF-1.7" + bytes(124), "PDF"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG2000"),
        (b"hello, this is a text file", None),
        (b"", None),
    ],
)
def test_sniff_format_names_format_from_first_bytes(head, expected):
    assert sniff_format(head) == expected


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_prepare_radiograph_scales_12_bit_in_16_bit_to_full_range(tmp_path, suffix):
    stored = np.arange(4096, dtype=np.uint16).reshape(64, 64)
    path = save(stored, tmp_path / f"twelve-bit{suffix}")

    prepared = prepare_radiograph(path, size=64)

    expected = np.rint(stored / 4095 * 255).astype(np.uint8)
    np.testing.assert_array_equal(prepared.pixels, expected)
    assert (prepared.pixels.min(), prepared.pixels.max()) == (0, 255)


def test_prepare_radiograph_scales_16_bit_by_real_range_not_clipping(tmp_path):
    stored = np.tile(30_000 + np.arange(256, dtype=np.uint16), (256, 1))
    path = save(stored, tmp_path / "narrow.png")

    prepared = prepare_radiograph(path, size=256)

    np.testing.assert_array_equal(prepared.pixels[0], np.arange(256))


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [
        ("L", ".png"),
        ("RGB", ".png"),
        ("RGBA", ".png"),
        ("P", ".png"),
        ("CMYK", ".tif"),
        ("RGB", ".bmp"),
        ("LA", ".png"),
    ],
)
def test_prepare_radiograph_turns_grey_held_in_any_mode_into_same_pixels(
    tmp_path, mode, suffix
):
    path = save(GREY, tmp_path / f"grey-{mode}{suffix}", mode=mode)

    prepared = prepare_radiograph(path, size=96)

    np.testing.assert_array_equal(prepared.pixels, GREY)


def test_prepare_radiograph_reads_cmyk_jpeg_as_grey(tmp_path):
    path = save(GREY, tmp_path / "cmyk.jpg", mode="CMYK", quality=95)

    prepared = prepare_radiograph(path, size=96)

    assert prepared.file_format == "JPEG"
    assert np.abs(prepared.pixels.astype(int) - GREY).mean() < 2


def test_prepare_radiograph_applies_exif_orientation(tmp_path):
    wide = np.zeros((64, 128), dtype=np.uint8)
    wide[:, 64:] = 250  # dark left half, bright right half as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90 degree clockwise turn
    path = save(wide, tmp_path / "rotated.jpg", quality=95, exif=exif)

    prepared = prepare_radiograph(path, size=128)

    assert (prepared.original_width, prepared.original_height) == (64, 128)
    middle = prepared.pixels[:, 40:88].astype(int)
    assert middle[:60].mean() < 20
    assert middle[68:].mean() > 230


def test_prepare_radiograph_decodes_4000_px_jpeg_in_little_memory(tmp_path):
    big = np.kron(gradient(500, 500), np.ones((8, 8), dtype=np.uint8))
    path = save(big, tmp_path / "big.jpg", quality=90)
    tracemalloc.start()

    prepared = prepare_radiograph(path, size=256)

    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (prepared.original_width, prepared.original_height) == (4000, 4000)
    assert prepared.pixels.shape == (256, 256)
    assert peak < 4_000_000, f"decoding kept {peak} bytes of arrays"


def test_prepare_radiograph_decodes_4000_px_16_bit_png_in_strips(tmp_path):
    big = np.kron(gradient(500, 500, high=4095), np.ones((8, 8), dtype=np.uint16))
    path = save(big, tmp_path / "big16.png", compress_level=1)
    tracemalloc.start()

    prepared = prepare_radiograph(path, size=256)

    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert prepared.pixels.max() == 255
    assert prepared.pixels.shape == (256, 256)
    assert peak < 16_000_000, f"decoding kept {peak} bytes of arrays"


def test_prepare_radiograph_reads_rgba_png_saved_as_jpg_by_content():
    prepared = prepare_radiograph(RGBA_PNG_AS_JPG, size=256)

    assert prepared.file_format == "PNG"
    assert (prepared.original_width, prepared.original_height) == (826, 768)
    assert prepared.pixels.shape == (256, 256)
    assert 0 < prepared.pixels.mean() < 255


def test_prepare_radiograph_reads_full_size_rgb_lateral():
    prepared = prepare_radiograph(FULL_SIZE_LATERAL, size=256)

    assert prepared.file_format == "JPEG"
    assert (prepared.original_width, prepared.original_height) == (2200, 2200)
    assert prepared.pixels.std() > 20
    assert len(prepared.sha256) == 64
    assert prepared.patient_id == ""


def _truncated(file_format: str) -> bytes:
    content = encode(gradient(128, 128), file_format)
    return content[: len(content) // 2]


@pytest.mark.parametrize(
    ("content", "limits", "reason"),
    [
        (b"", DecodeLimits(), "empty-file"),
        (b"patient list, not an image\n" * 10, DecodeLimits(), "not-an-image"),
        (_truncated("JPEG"), DecodeLimits(), "truncated-or-corrupt"),
        (_truncated("PNG"), DecodeLimits(), "truncated-or-corrupt"),
        (encode(GREY, "GIF"), DecodeLimits(), "unsupported-format"),
        (encode(GREY, "WEBP"), DecodeLimits(), "unsupported-format"),
        (encode(gradient(32, 200), "PNG"), DecodeLimits(), "too-small"),
        (
            encode(np.full((96, 96), 7, np.uint8), "PNG"),
            DecodeLimits(),
            "constant-image",
        ),
        (encode(GREY, "PNG"), DecodeLimits(max_pixels=96 * 95), "too-large"),
    ],
)
def test_decode_radiograph_rejects_with_reason(content, limits, reason):
    with pytest.raises(RadiographError) as caught:
        decode_radiograph(content, Path("case.img"), 64, limits)

    assert caught.value.reason == reason
    assert str(caught.value).startswith(f"case.img: {reason}: ")


def test_decode_radiograph_records_intensity_before_padding():
    half = np.zeros((64, 128), dtype=np.uint8)
    half[:, 64:] = 255

    prepared = decode_radiograph(encode(half, "PNG"), Path("x.png"), 128)

    assert prepared.intensity_mean == pytest.approx(127.5)
    assert prepared.clipped_fraction == 1.0
    assert prepared.pixels[:32].max() == 0  # padding above the image is black


def test_prepare_radiograph_gives_predict_and_ingest_same_pixels(tmp_path):
    path = save(gradient(300, 180), tmp_path / "tall.png")

    from_path = prepare_radiograph(path, size=128)
    from_bytes = decode_radiograph(path.read_bytes(), path, 128)

    np.testing.assert_array_equal(from_path.pixels, from_bytes.pixels)
