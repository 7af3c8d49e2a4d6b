"""Tests for tasks.dicom: DICOM pixels as a viewer displays them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import JPEG2000Lossless, RLELossless

from tasks.dicom import decode_dicom
from tasks.radiograph import RadiographError, prepare_radiograph, to_uint8
from tests.tasks.radiograph_files import (
    DICOM_FIXTURES,
    MONOCHROME1_FIXTURE,
    MONOCHROME2_FIXTURE,
    dicom_dataset,
    gradient,
    write_dicom,
)

TWELVE_BIT = gradient(64, 64, high=4095)


def test_prepare_radiograph_inverts_real_monochrome1_dicom():
    monochrome2 = prepare_radiograph(MONOCHROME2_FIXTURE, size=256)
    monochrome1 = prepare_radiograph(MONOCHROME1_FIXTURE, size=256)

    difference = monochrome1.pixels.astype(int) - (255 - monochrome2.pixels.astype(int))
    assert np.abs(difference).max() <= 1
    assert (monochrome2.original_width, monochrome2.original_height) == (1024, 1024)
    assert monochrome2.file_format == "DICOM"
    assert monochrome2.intensity_mean > 128 > monochrome1.intensity_mean


def test_decode_dicom_inverts_monochrome1_exactly(tmp_path):
    plain = write_dicom(tmp_path / "m2.dcm", TWELVE_BIT, bits_stored=12)
    inverted = write_dicom(
        tmp_path / "m1.dcm", TWELVE_BIT, bits_stored=12, photometric="MONOCHROME1"
    )

    bright = prepare_radiograph(plain, size=64).pixels
    dark = prepare_radiograph(inverted, size=64).pixels

    np.testing.assert_array_equal(dark, 255 - bright)
    np.testing.assert_array_equal(bright, np.rint(TWELVE_BIT / 4095 * 255))


def test_decode_dicom_applies_rescale_before_window(tmp_path):
    stored = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (64, 1))
    path = write_dicom(
        tmp_path / "ct.dcm",
        stored,
        bits_stored=12,
        RescaleSlope=1,
        RescaleIntercept=-1024,
        WindowCenter=0,
        WindowWidth=400,
    )

    pixels = prepare_radiograph(path, size=64).pixels[0]

    units = stored[0].astype(float) - 1024  # what the modality LUT gives
    assert (pixels[units <= -200] == 0).all()
    assert (pixels[units >= 200] == 255).all()
    inside = (units > -200) & (units < 200)
    assert inside.sum() == 7
    assert np.all(np.diff(pixels[inside].astype(int)) > 0)


def test_decode_dicom_applies_voi_lut_sequence(tmp_path):
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 16]
    table = np.rint(4095 * (np.arange(4096) / 4095) ** 0.5).astype(np.uint16)
    lut.LUTData = table.tobytes()
    path = write_dicom(
        tmp_path / "lut.dcm", TWELVE_BIT, bits_stored=12, VOILUTSequence=Sequence([lut])
    )

    grey, _ = decode_dicom(path.read_bytes(), path, 10**8)

    expected = np.rint(4095 * (TWELVE_BIT / 4095) ** 0.5)
    np.testing.assert_array_equal(grey, expected)


def test_decode_dicom_reads_jpeg_ls_like_uncompressed():
    plain = prepare_radiograph(DICOM_FIXTURES / "MR_small.dcm", size=64)
    jpeg_ls = prepare_radiograph(DICOM_FIXTURES / "MR_small_jpeg_ls_lossless.dcm", 64)

    np.testing.assert_array_equal(jpeg_ls.pixels, plain.pixels)
    assert plain.pixels.std() > 10


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_decode_dicom_reads_compressed_transfer_syntax(tmp_path, syntax):
    dataset = dicom_dataset(TWELVE_BIT, bits_stored=12)
    dataset.compress(
        syntax, encoding_plugin="pylibjpeg" if "2000" in syntax.name else ""
    )
    path = tmp_path / "compressed.dcm"
    dataset.save_as(path, enforce_file_format=True)

    grey, _ = decode_dicom(path.read_bytes(), path, 10**8)

    np.testing.assert_array_equal(grey, TWELVE_BIT)


def test_decode_dicom_reads_file_without_preamble(tmp_path):
    path = write_dicom(tmp_path / "bare", TWELVE_BIT, bits_stored=12, preamble=False)
    assert path.read_bytes()[128:132] != b"DICM"

    prepared = prepare_radiograph(path, size=64)

    assert prepared.file_format == "DICOM"
    np.testing.assert_array_equal(prepared.pixels, to_uint8(TWELVE_BIT.astype(float)))


def test_decode_dicom_turns_rgb_dicom_into_luma(tmp_path):
    rgb = np.stack([gradient(64, 64)] * 3, axis=-1)
    path = write_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB")

    grey, _ = decode_dicom(path.read_bytes(), path, 10**8)

    np.testing.assert_allclose(grey, gradient(64, 64), atol=0.01)


@pytest.mark.parametrize(
    ("name", "identifier", "expected"),
    [("Doe^Jane", "MRN-1", "MRN-1"), ("Doe^Jane", "", "Doe^Jane"), ("", "", "")],
)
def test_decode_dicom_returns_patient_id_or_name(tmp_path, name, identifier, expected):
    path = write_dicom(
        tmp_path / "p.dcm", TWELVE_BIT, patient_name=name, patient_id=identifier
    )

    _, patient = decode_dicom(path.read_bytes(), path, 10**8)

    assert patient == expected


def _without_pixels(path: Path) -> Path:
    dataset = dicom_dataset(TWELVE_BIT)
    del dataset.PixelData
    dataset.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize(
    ("make", "max_pixels", "reason"),
    [
        (_without_pixels, 10**8, "unsupported-format"),
        (
            lambda p: write_dicom(p, TWELVE_BIT, NumberOfFrames=2),
            10**8,
            "unsupported-format",
        ),
        (
            lambda p: write_dicom(p, TWELVE_BIT, photometric="PALETTE COLOR"),
            10**8,
            "unsupported-format",
        ),
        (lambda p: write_dicom(p, TWELVE_BIT), 64 * 63, "too-large"),
        (
            lambda p: write_dicom(p, TWELVE_BIT, PixelData=bytes(99)),
            10**8,
            "unreadable-dicom",
        ),
    ],
)
def test_decode_dicom_refuses_unusable_files(tmp_path, make, max_pixels, reason):
    path = make(tmp_path / "bad.dcm")

    with pytest.raises(RadiographError) as caught:
        decode_dicom(path.read_bytes(), path, max_pixels)

    assert caught.value.reason == reason
