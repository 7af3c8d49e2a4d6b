"""File digests, read in blocks: the sha256 ingest records, the md5 DVC records.

One place for both, so that the change check, lineage, the registry and the
training fingerprint hash a file the same way, without importing TensorFlow.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    """Return the sha256 of a file's bytes, as ingest records it per image."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_md5(path: Path) -> str:
    """Return the md5 of a file, as DVC records it in ``dvc.lock``."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()
