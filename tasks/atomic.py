"""Write files and folders so that a reader never sees them half-written.

Every output of the pipeline goes through here: a crash or a kill mid-way leaves
the previous version in place, never a truncated CSV or model.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only a type here; decode workers start faster without pandas
    import pandas as pd


@contextlib.contextmanager
def atomic_path(target: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target`` and move it into place on success.

    Args:
        target: the file that must appear whole or not at all.
        suffix: extension for the temporary file, for writers that need one
            (Keras insists on ``.keras``).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=target.parent
    )
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json(target: Path, payload: Any) -> None:
    """Write ``payload`` as indented, key-sorted JSON atomically."""
    write_text(target, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_csv(target: Path, table: pd.DataFrame) -> None:
    """Write ``table`` as CSV without the index, atomically."""
    with atomic_path(target) as temporary:
        table.to_csv(temporary, index=False, lineterminator="\n")


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder that replaces ``target`` on success.

    The old folder is moved aside before the new one is renamed in, so a reader
    sees either the old contents or the new ones; on failure the staging folder
    is removed and ``target`` is untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        retired = None
        if target.exists():
            retired = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent)
            )
            os.replace(target, retired / target.name)
        os.replace(staging, target)
        if retired is not None:
            shutil.rmtree(retired)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
