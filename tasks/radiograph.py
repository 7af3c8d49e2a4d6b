"""Decode one radiograph file into the greyscale square the model sees.

Training (through ``ingest``) and ``predict`` both call :func:`prepare_radiograph`,
so a file is turned into pixels in exactly one way. The policy, written once:

* the format is recognised from the file's first bytes, never from its name;
* colour, palette and alpha files holding greyscale images become one channel
  (ITU-R 601 luma, alpha dropped); JPEG EXIF orientation is applied;
* 16-bit data (including 12-bit values in a 16-bit container) and DICOM pixel
  data are scaled by the image's own minimum and maximum to 0-255, never
  clipped at 255; DICOM gets its modality and VOI LUTs, and MONOCHROME1 is
  inverted so that bone is bright, as in MONOCHROME2;
* the image is padded with black to a square around its centre, then resized
  to ``size`` x ``size``. Padding keeps the whole field of view, which is what
  separates a lateral chest from a frontal one; cropping could cut it away.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

PIL_FORMATS = {"PNG", "JPEG", "TIFF", "BMP"}
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"BM": "BMP",
}


class RadiographError(ValueError):
    """A file that cannot be used as a radiograph, with a short reason code."""

    def __init__(self, path: Path, reason: str, detail: str) -> None:
        super().__init__(f"{path}: {reason}: {detail}")
        self.path = path
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds that protect the pipeline from unusable or hostile files."""

    min_side: int = 64
    max_pixels: int = 80_000_000


@dataclass(frozen=True)
class PreparedRadiograph:
    """A decoded radiograph at working size with what ingest records about it."""

    pixels: np.ndarray
    sha256: str
    original_width: int
    original_height: int
    file_format: str


def sniff_format(head: bytes) -> str | None:
    """Name the image format from a file's first 132 bytes, or ``None``."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "DICOM"
    for signature, name in _SIGNATURES.items():
        if head.startswith(signature):
            return name
    return None


def prepare_radiograph(
    path: Path, size: int, limits: DecodeLimits | None = None
) -> PreparedRadiograph:
    """Read ``path`` and return its ``size`` x ``size`` uint8 greyscale pixels.

    Raises:
        RadiographError: the file is empty, not an image, truncated, too small,
            too large or constant; ``reason`` says which.
    """
    limits = limits or DecodeLimits()
    content = path.read_bytes()
    if not content:
        raise RadiographError(path, "empty-file", "the file has zero bytes")
    file_format = sniff_format(content[:132])
    if file_format is None:
        raise RadiographError(
            path, "not-an-image", "first bytes match no PNG, JPEG, TIFF, BMP or DICOM"
        )
    if file_format == "DICOM":
        grey = _decode_dicom(path, limits)
    else:
        grey = _decode_pil(path, limits)
    height, width = grey.shape
    _check_usable(path, grey, limits)
    pixels = pad_and_resize(to_uint8(grey), size)
    return PreparedRadiograph(
        pixels=pixels,
        sha256=hashlib.sha256(content).hexdigest(),
        original_width=width,
        original_height=height,
        file_format=file_format,
    )


def _check_usable(path: Path, grey: np.ndarray, limits: DecodeLimits) -> None:
    height, width = grey.shape
    if min(height, width) < limits.min_side:
        raise RadiographError(
            path,
            "too-small",
            f"expected both sides >= {limits.min_side} px, got {width}x{height}",
        )
    if float(grey.max()) == float(grey.min()):
        raise RadiographError(
            path, "constant-image", f"every pixel has the value {grey.flat[0]}"
        )


def _check_pixel_count(path: Path, width: int, height: int, limit: int) -> None:
    if width * height > limit:
        raise RadiographError(
            path,
            "too-large",
            f"{width}x{height} = {width * height} pixels exceeds the limit {limit}",
        )


def _decode_pil(path: Path, limits: DecodeLimits) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if image.format not in PIL_FORMATS:
                raise RadiographError(
                    path, "unsupported-format", f"{image.format} is not supported"
                )
            _check_pixel_count(path, *image.size, limits.max_pixels)
            image.load()
            image = ImageOps.exif_transpose(image)
            return _pil_to_grey(image)
    except RadiographError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise RadiographError(path, "truncated-or-corrupt", str(error)) from error


def _pil_to_grey(image: Image.Image) -> np.ndarray:
    """Return one channel; 16- and 32-bit data keep their full range as float."""
    if image.mode in {"I;16", "I;16B", "I;16L", "I", "F"}:
        return np.asarray(image, dtype=np.float32)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "LA", "PA"}:
        image = image.convert("RGB")
    if image.mode != "L":
        image = image.convert("L")
    return np.asarray(image, dtype=np.uint8)


def _decode_dicom(path: Path, limits: DecodeLimits) -> np.ndarray:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        dataset = pydicom.dcmread(path)
        _check_pixel_count(path, int(dataset.Columns), int(dataset.Rows), limits.max_pixels)
        pixels = dataset.pixel_array
    except RadiographError:
        raise
    except Exception as error:  # pydicom raises many types for bad pixel data
        raise RadiographError(path, "unreadable-dicom", str(error)) from error
    if pixels.ndim != 2:
        raise RadiographError(
            path, "unsupported-format", f"expected one 2-D frame, got {pixels.shape}"
        )
    values = apply_modality_lut(pixels, dataset)
    values = apply_voi_lut(values, dataset, prefer_lut=True)
    values = np.asarray(values, dtype=np.float32)
    if dataset.get("PhotometricInterpretation", "") == "MONOCHROME1":
        values = values.max() - values
    return values


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
