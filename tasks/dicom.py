"""Read DICOM pixel data as a viewer would display it, through pydicom.

The order is the one the DICOM standard gives for greyscale images: stored
values, then the modality LUT (rescale slope and intercept, or a Modality LUT
Sequence) into physical units, then the VOI LUT or window chosen by whoever
exported the study, then presentation: MONOCHROME1 images (0 = white) are
inverted so that bone is bright, as in MONOCHROME2. Colour DICOMs (RGB, YBR)
become ITU-R 601 luma. Compressed transfer syntaxes are decoded by whichever
pydicom plugin handles them: Pillow (JPEG baseline, JPEG 2000), python-gdcm
(JPEG lossless and extended, JPEG-LS, JPEG 2000) and pylibjpeg with openjpeg
(JPEG 2000); RLE is built into pydicom.

pydicom's warnings and log records are silenced while a file is read, because
some of them quote element values and a PatientName must never reach a log.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from tasks.radiograph import RadiographError, check_pixel_count

GREYSCALE = {"MONOCHROME1", "MONOCHROME2"}
COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def decode_dicom(content: bytes, path: Path, max_pixels: int) -> tuple[np.ndarray, str]:
    """Return the displayed greyscale pixels (float32) and the patient id.

    The patient id is PatientID, or PatientName when PatientID is empty, in
    clear text; the caller must pseudonymise it before storing it anywhere.

    Raises:
        RadiographError: no pixel data, several frames, an unsupported
            photometric interpretation, too many pixels, or pixel data that
            no installed decoder can read.
    """
    with _quiet_pydicom():
        dataset = _read(content, path)
        photometric = _check_image(dataset, path, max_pixels)
        try:
            pixels = dataset.pixel_array
        except Exception as error:  # each pixel data handler raises its own types
            detail = f"{type(error).__name__}: {error}"
            raise RadiographError(path, "unreadable-dicom", detail) from error
        if photometric in COLOUR:
            return pixels.astype(np.float32) @ _LUMA, patient_identifier(dataset)
        values = apply_voi_lut(apply_modality_lut(pixels, dataset), dataset)
    values = np.asarray(values, dtype=np.float32)
    if photometric == "MONOCHROME1":
        values = float(values.max()) + float(values.min()) - values
    return values, patient_identifier(dataset)


@contextlib.contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """Drop pydicom's warnings and log records, which may quote element values."""
    logger = logging.getLogger("pydicom")
    was_disabled, logger.disabled = logger.disabled, True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.disabled = was_disabled


def _read(content: bytes, path: Path) -> Dataset:
    try:
        return pydicom.dcmread(io.BytesIO(content), force=True)
    except Exception as error:  # pydicom raises many types for broken headers
        detail = f"{type(error).__name__}: {error}"
        raise RadiographError(path, "unreadable-dicom", detail) from error


def _check_image(dataset: Dataset, path: Path, max_pixels: int) -> str:
    """Return the photometric interpretation of a single-frame image, or refuse."""
    if "PixelData" not in dataset:
        raise RadiographError(path, "unsupported-format", "the DICOM has no pixel data")
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise RadiographError(
            path, "unsupported-format", f"expected one frame, got {frames}"
        )
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric not in GREYSCALE | COLOUR:
        raise RadiographError(
            path,
            "unsupported-format",
            f"expected a greyscale or RGB DICOM, got {photometric}",
        )
    try:
        width, height = int(dataset.Columns), int(dataset.Rows)
    except (AttributeError, TypeError, ValueError) as error:
        raise RadiographError(path, "unreadable-dicom", "no Rows/Columns") from error
    check_pixel_count(path, width, height, max_pixels)
    return photometric


def patient_identifier(dataset: Dataset) -> str:
    """Return PatientID, else PatientName, else an empty string."""
    for keyword in ("PatientID", "PatientName"):
        value = str(dataset.get(keyword, "") or "").strip()
        if value:
            return value
    return ""
