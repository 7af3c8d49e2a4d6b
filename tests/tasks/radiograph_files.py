"""Write small radiograph files of every kind ingest meets, with known pixels.

Tests of decoding and ingest build their inputs here: 8- and 16-bit PNG and
TIFF, colour and CMYK files holding grey images, DICOMs written with pydicom
(any photometric interpretation, LUTs, transfer syntax, planted patient
names), and broken files of each kind.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DICOM_FIXTURES = FIXTURES / "dicom"
MONOCHROME2_FIXTURE = (
    DICOM_FIXTURES / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
)
MONOCHROME1_FIXTURE = DICOM_FIXTURES / "Fake_MONOHR1.dcm"


def gradient(height: int, width: int, high: int = 255) -> np.ndarray:
    """Return a left-to-right ramp from 0 to ``high`` with a brighter disc.

    The disc keeps the image from being symmetric, so flips and rotations
    show up in tests.
    """
    ramp = np.linspace(0, high * 0.8, width)[np.newaxis, :].repeat(height, axis=0)
    rows, cols = np.mgrid[0:height, 0:width]
    disc = (rows - height * 0.3) ** 2 + (cols - width * 0.3) ** 2 < (height / 6) ** 2
    ramp[disc] = high
    return np.rint(ramp).astype(np.uint16 if high > 255 else np.uint8)


def save(pixels: np.ndarray, path: Path, mode: str | None = None, **options) -> Path:
    """Save ``pixels`` with Pillow in the format ``path``'s suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    if mode is not None:
        image = image.convert(mode)
    image.save(path, **options)
    return path


def encode(pixels: np.ndarray, file_format: str, **options) -> bytes:
    """Return the bytes of ``pixels`` saved in ``file_format``."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=file_format, **options)
    return buffer.getvalue()


def write_dicom(
    path: Path,
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    patient_name: str = "",
    patient_id: str = "",
    preamble: bool = True,
    **elements: object,
) -> Path:
    """Write an uncompressed single-frame DICOM holding ``stored`` values.

    Extra keyword arguments become data elements (``WindowCenter``,
    ``RescaleIntercept``, ``VOILUTSequence`` ...).
    """
    dataset = dicom_dataset(
        stored,
        photometric=photometric,
        bits_stored=bits_stored,
        patient_name=patient_name,
        patient_id=patient_id,
    )
    for keyword, value in elements.items():
        setattr(dataset, keyword, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=preamble)
    return path


def dicom_dataset(
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    patient_name: str = "",
    patient_id: str = "",
) -> Dataset:
    """Build a Secondary Capture data set around ``stored`` pixel values."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = SecondaryCaptureImageStorage
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "CR"
    if patient_name:
        dataset.PatientName = patient_name
    if patient_id:
        dataset.PatientID = patient_id
    colour = stored.ndim == 3
    bits = stored.dtype.itemsize * 8
    dataset.Rows, dataset.Columns = stored.shape[:2]
    dataset.SamplesPerPixel = 3 if colour else 1
    if colour:
        dataset.PlanarConfiguration = 0
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated = bits
    dataset.BitsStored = bits_stored or bits
    dataset.HighBit = dataset.BitsStored - 1
    dataset.PixelRepresentation = 1 if stored.dtype.kind == "i" else 0
    dataset.PixelData = np.ascontiguousarray(stored).tobytes()
    return dataset
