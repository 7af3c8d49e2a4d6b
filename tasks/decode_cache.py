"""Decode each distinct source file once, remembering the result by its content.

Ingest reads and hashes (sha256) every source file on every run, but decodes
only content it has not decoded before under the same settings. The result of
a decode, a prepared PNG plus a small JSON record (or a JSON record of why the
file was rejected), lives in a content-addressed folder::

    <cache root>/<settings key>/<sha256[:2]>/<sha256>.{json,png}

The settings key covers the image size, the decode limits, the salt's
fingerprint (records hold the pseudonym of a DICOM's patient), the source of
the decoding modules and the versions of the libraries that decode, so
changing any of them starts a fresh folder instead of serving stale pixels.
The stage keeps the cache in ``.laterality/decode-cache``, outside git and
DVC: DVC deletes a stage's outputs before it runs, which would empty a cache
kept among them. After each run, entries the source no longer names are
pruned, so the cache stays the size of one prepared dataset.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from PIL import Image

from tasks import atomic, dicom, pixels, radiograph
from tasks.privacy import pseudonymise, salt_fingerprint
from tasks.radiograph import DecodeLimits, RadiographError, decode_radiograph

log = logging.getLogger(__name__)

DECODERS = (
    "pillow",
    "pydicom",
    "numpy",
    "pylibjpeg",
    "pylibjpeg-openjpeg",
    "python-gdcm",
)


def settings_key(size: int, limits: DecodeLimits, salt: bytes) -> str:
    """Return the cache folder name for decoding with these settings."""
    code = hashlib.sha256()
    for module in (radiograph, dicom, pixels):
        code.update(Path(module.__file__).read_bytes())
    facts = {
        "size": size,
        "min_side": limits.min_side,
        "max_pixels": limits.max_pixels,
        "salt": salt_fingerprint(salt),
        "code": code.hexdigest(),
        "libraries": {name: _version(name) for name in DECODERS},
    }
    encoded = json.dumps(facts, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


@dataclass(frozen=True)
class DecodeJob:
    """One source file to decode, and where its results go."""

    path: Path
    source_path: str
    cache_folder: Path
    images_dir: Path
    size: int
    limits: DecodeLimits
    salt: bytes


def decode_entry(job: DecodeJob) -> dict[str, object]:
    """Hash one file, decode it unless cached, and copy its PNG into place.

    Returns:
        The file's record: ``status`` (ok or rejected), ``sha256``, the reason
        and detail of a reject or the image's format, size and intensity
        figures, and ``decoded`` (False when the cache answered).
    """
    try:
        content = job.path.read_bytes()
    except FileNotFoundError:
        return _unread("missing-file", "the source names a file that does not exist")
    except OSError as error:
        return _unread("unreadable", error.strerror or str(error))
    sha256 = hashlib.sha256(content).hexdigest()
    record = load_record(job.cache_folder, sha256)
    decoded = record is None
    if record is None:
        record = _decode(content, sha256, job)
    del content
    if record["status"] == "ok":
        # The staging folder is swapped in whole, so a plain copy is safe here.
        target = job.images_dir / f"{sha256}.png"
        shutil.copyfile(cached_image(job.cache_folder, sha256), target)
    return {**record, "sha256": sha256, "decoded": decoded}


def _unread(reason: str, detail: str) -> dict[str, object]:
    return {
        "status": "rejected",
        "reason": reason,
        "detail": detail,
        "sha256": "",
        "decoded": False,
    }


def _decode(content: bytes, sha256: str, job: DecodeJob) -> dict[str, object]:
    """Decode and store the outcome; a reject is remembered like a success."""
    try:
        prepared = decode_radiograph(
            content, Path(job.source_path), job.size, job.limits
        )
    except RadiographError as error:
        record = {"status": "rejected", "reason": error.reason, "detail": error.detail}
    except Exception as error:  # a decoder bug must cost one file, not the run
        detail = f"{type(error).__name__}: {error}"
        record = {"status": "rejected", "reason": "decode-failed", "detail": detail}
    else:
        record = {
            "status": "ok",
            "file_format": prepared.file_format,
            "original_width": prepared.original_width,
            "original_height": prepared.original_height,
            "intensity_mean": round(prepared.intensity_mean, 3),
            "intensity_std": round(prepared.intensity_std, 3),
            "clipped_fraction": round(prepared.clipped_fraction, 5),
            "dicom_patient_hash": pseudonymise(prepared.patient_id, job.salt),
        }
        png = cached_image(job.cache_folder, sha256)
        with atomic.atomic_path(png, suffix=".png") as temporary:
            Image.fromarray(prepared.pixels).save(temporary, format="PNG")
    atomic.write_json(_record_path(job.cache_folder, sha256), record)
    return record


def _record_path(folder: Path, sha256: str) -> Path:
    return folder / sha256[:2] / f"{sha256}.json"


def cached_image(folder: Path, sha256: str) -> Path:
    """Return where the prepared PNG of ``sha256`` is kept."""
    return folder / sha256[:2] / f"{sha256}.png"


def load_record(folder: Path, sha256: str) -> dict[str, object] | None:
    """Return the stored outcome for ``sha256``, or ``None`` when there is none.

    A record whose PNG has gone missing counts as absent, so it is decoded
    again rather than trusted.
    """
    try:
        record = json.loads(_record_path(folder, sha256).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if record.get("status") == "ok" and not cached_image(folder, sha256).exists():
        return None
    return record


def prune_cache(root: Path, key: str, used: set[str]) -> int:
    """Delete other settings' folders and entries no longer used; count files."""
    removed = 0
    if not root.is_dir():
        return removed
    for folder in root.iterdir():
        if folder.is_dir() and folder.name != key:
            removed += sum(1 for path in folder.rglob("*") if path.is_file())
            shutil.rmtree(folder)
    for path in (root / key).glob("*/*"):
        if path.stem not in used and path.suffix in {".json", ".png"}:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
