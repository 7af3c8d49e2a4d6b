"""Decode one radiograph file into the greyscale square the model sees.

Training (through ``ingest``) and ``predict`` both call :func:`prepare_radiograph`,
so a file is turned into pixels in exactly one way. The policy, written once:

* the format is recognised from the file's first bytes, never from its name;
  PNG, JPEG, TIFF, BMP and DICOM are read, other image formats are refused as
  unsupported rather than guessed at;
* colour, palette, alpha and CMYK files holding greyscale images become one
  channel (ITU-R 601 luma, alpha dropped); JPEG EXIF orientation is applied;
* 16-bit data (including 12-bit values in a 16-bit container) and DICOM pixel
  data are scaled by the image's own minimum and maximum to 0-255, never
  clipped at 255; 8-bit data keep their values. DICOM handling is in
  :mod:`tasks.dicom`, the array steps in :mod:`tasks.pixels`;
* an image whose long side exceeds twice ``size`` is shrunk by a whole factor
  while it is decoded (JPEG DCT scaling, block means otherwise), so a
  4000 x 4000 scan costs memory for a few hundred pixels a side, not sixteen
  million; the long side stays at least twice ``size`` so the final resize
  still has detail to work with;
* the image is padded with black to a square around its centre, then resized
  to ``size`` x ``size``. Padding keeps the whole field of view, which is what
  separates a lateral chest from a frontal one; cropping could cut it away.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from tasks.pixels import (
    block_mean,
    intensity_figures,
    pad_and_resize,
    reduction_factor,
    to_uint8,
)

PIL_FORMATS = {"PNG", "JPEG", "MPO", "TIFF", "BMP"}
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"BM": "BMP",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"%PDF": "PDF",
    b"8BPS": "PSD",
    b"\x00\x00\x00\x0cjP  \r\n\x87\n": "JPEG2000",
    b"\xffO\xffQ": "JPEG2000",
}
_SWAPPED_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112


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
    """A decoded radiograph at working size with what ingest records about it.

    ``patient_id`` is the DICOM PatientID (or PatientName) in clear text, empty
    for other formats; ingest replaces it with a salted hash at once and it
    must never be written or logged. The intensity figures describe the image
    after scaling to 0-255 and before padding.
    """

    pixels: np.ndarray
    sha256: str
    original_width: int
    original_height: int
    file_format: str
    patient_id: str = ""
    intensity_mean: float = 0.0
    intensity_std: float = 0.0
    clipped_fraction: float = 0.0


def sniff_format(head: bytes) -> str | None:
    """Name the image format from a file's first 132 bytes, or ``None``."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "DICOM"
    for signature, name in _SIGNATURES.items():
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        return "HEIF"
    if _looks_like_bare_dicom(head):
        return "DICOM"
    return None


def _looks_like_bare_dicom(head: bytes) -> bool:
    """Spot a DICOM data set written without the 128-byte preamble.

    Such files start with a group 0002 or 0008 tag followed by either a
    two-letter VR (explicit VR) or a short length (implicit VR).
    """
    if len(head) < 8 or head[:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    explicit_vr = head[4:6].isalpha() and head[4:6].isupper()
    return explicit_vr or int.from_bytes(head[4:8], "little") < 256


def prepare_radiograph(
    path: Path, size: int, limits: DecodeLimits | None = None
) -> PreparedRadiograph:
    """Read ``path`` and return its ``size`` x ``size`` uint8 greyscale pixels.

    Raises:
        RadiographError: the file is empty, not an image, truncated, too small,
            too large or constant; ``reason`` says which.
        OSError: the file cannot be read at all.
    """
    return decode_radiograph(path.read_bytes(), path, size, limits)


def decode_radiograph(
    content: bytes, path: Path, size: int, limits: DecodeLimits | None = None
) -> PreparedRadiograph:
    """Decode the bytes of one file; ``path`` only names it in errors.

    Raises:
        RadiographError: as for :func:`prepare_radiograph`.
    """
    limits = limits or DecodeLimits()
    if not content:
        raise RadiographError(path, "empty-file", "the file has zero bytes")
    file_format = sniff_format(content[:132])
    if file_format is None:
        raise RadiographError(
            path, "not-an-image", "first bytes match no PNG, JPEG, TIFF, BMP or DICOM"
        )
    patient_id = ""
    if file_format == "DICOM":
        from tasks.dicom import decode_dicom

        full, patient_id = decode_dicom(content, path, limits.max_pixels)
        height, width = full.shape
        grey = block_mean(full, reduction_factor(width, height, size))
        del full
    elif file_format in PIL_FORMATS:
        grey, width, height = _decode_pil(content, path, size, limits)
    else:
        raise RadiographError(
            path, "unsupported-format", f"{file_format} files are not supported"
        )
    _check_usable(path, grey, width, height, limits)
    scaled = to_uint8(grey)
    mean, std, clipped = intensity_figures(scaled)
    return PreparedRadiograph(
        pixels=pad_and_resize(scaled, size),
        sha256=hashlib.sha256(content).hexdigest(),
        original_width=width,
        original_height=height,
        file_format=file_format,
        patient_id=patient_id,
        intensity_mean=mean,
        intensity_std=std,
        clipped_fraction=clipped,
    )


def _check_usable(
    path: Path, grey: np.ndarray, width: int, height: int, limits: DecodeLimits
) -> None:
    if min(height, width) < limits.min_side:
        raise RadiographError(
            path,
            "too-small",
            f"expected both sides >= {limits.min_side} px, got {width}x{height}",
        )
    if grey.dtype.kind == "f" and not np.isfinite(grey).all():
        raise RadiographError(
            path, "truncated-or-corrupt", "pixel values include NaN or infinity"
        )
    if float(grey.max()) == float(grey.min()):
        raise RadiographError(
            path, "constant-image", f"every pixel has the value {grey.flat[0]}"
        )


def check_pixel_count(path: Path, width: int, height: int, limit: int) -> None:
    """Refuse an image before decoding when it has more pixels than ``limit``."""
    if width * height > limit:
        raise RadiographError(
            path,
            "too-large",
            f"{width}x{height} = {width * height} pixels exceeds the limit {limit}",
        )


def _decode_pil(
    content: bytes, path: Path, size: int, limits: DecodeLimits
) -> tuple[np.ndarray, int, int]:
    """Return grey pixels and the displayed width and height of a Pillow file."""
    try:
        with Image.open(io.BytesIO(content)) as image:
            if image.format not in PIL_FORMATS:
                raise RadiographError(
                    path, "unsupported-format", f"{image.format} is not supported"
                )
            width, height = image.size
            check_pixel_count(path, width, height, limits.max_pixels)
            factor = reduction_factor(width, height, size)
            if image.format in {"JPEG", "MPO"} and factor > 1:
                image.draft("L", (width // factor, height // factor))
            if image.getexif().get(_EXIF_ORIENTATION) in _SWAPPED_ORIENTATIONS:
                width, height = height, width
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            factor = reduction_factor(*image.size, size)
            return _pil_to_grey(image, factor), width, height
    except RadiographError:
        raise
    except Image.DecompressionBombError as error:
        raise RadiographError(path, "too-large", str(error)) from error
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as error:
        raise RadiographError(path, "truncated-or-corrupt", str(error)) from error


def _pil_to_grey(image: Image.Image, factor: int) -> np.ndarray:
    """Return one channel shrunk by ``factor``; wide data keep their range."""
    if image.mode.startswith("I;16"):
        return block_mean(image, factor)
    if image.mode in {"I", "F"}:
        image = image.reduce(factor) if factor > 1 else image
        return np.asarray(image, dtype=np.float32)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "PA"}:
        image = image.convert("RGB")
    if image.mode != "L":
        image = image.convert("L")
    if factor > 1:
        image = image.reduce(factor)
    return np.asarray(image, dtype=np.uint8)
