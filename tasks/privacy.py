"""Pseudonymise patient identifiers before they reach any output or log.

A patient id is stored only as a keyed hash (HMAC-SHA256 with a per-project
secret salt). The salt lives outside git, in ``.laterality/salt`` by default or
wherever ``LATERALITY_SALT_FILE`` points, and is created on first use. Keep it:
with another salt the same patient gets another pseudonym, and lineage queries
by patient stop matching earlier manifests.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

DEFAULT_SALT_FILE = Path(".laterality") / "salt"
PSEUDONYM_LENGTH = 16


def salt_file() -> Path:
    """Return where the project salt is kept."""
    return Path(os.environ.get("LATERALITY_SALT_FILE", DEFAULT_SALT_FILE))


def load_or_create_salt(path: Path | None = None) -> bytes:
    """Read the salt, creating a random 32-byte one if none exists yet."""
    path = path or salt_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first; read theirs
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32))
    salt = path.read_text().strip()
    if len(salt) < 32:
        raise ValueError(f"{path}: expected a salt of at least 32 hex characters")
    return salt.encode()


def pseudonymise(identifier: str, salt: bytes) -> str:
    """Return the salted hash that stands for ``identifier``; empty stays empty."""
    identifier = identifier.strip()
    if not identifier:
        return ""
    digest = hmac.new(salt, identifier.encode("utf-8"), hashlib.sha256)
    return digest.hexdigest()[:PSEUDONYM_LENGTH]


def salt_fingerprint(salt: bytes) -> str:
    """Return a short value that changes with the salt but does not reveal it.

    Caches that hold pseudonyms key on it, so a new salt never mixes with
    pseudonyms made under the old one.
    """
    digest = hmac.new(salt, b"xray-laterality salt fingerprint", hashlib.sha256)
    return digest.hexdigest()[:PSEUDONYM_LENGTH]
