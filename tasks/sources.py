"""List the radiographs a source names, refusing a source that cannot train.

A source is either a folder with one sub-folder per view (what Keras'
``flow_from_directory`` reads) or a CSV/TSV manifest with ``path,label`` and an
optional ``patient_id`` column (what ``flow_from_dataframe`` reads). Every
check here runs before ingest writes anything: a missing source, a label
outside ``base.classes``, a manifest without its columns, a path or symlink
that leads outside the source root, or a class with fewer files than
``ingest.min_per_class``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("path", "label")
SHOWN_ROWS = 5


@dataclass(frozen=True)
class SourceEntry:
    """One file named by the source, before decoding.

    ``patient_id`` is the manifest's clear-text value; ingest hashes it.
    """

    path: Path
    source_path: str
    label: str
    patient_id: str


def list_source(
    source: Path, root: Path, classes: tuple[str, ...], min_per_class: int = 1
) -> list[SourceEntry]:
    """List the radiographs a folder tree or manifest names, with their labels.

    Args:
        source: a folder of class folders, or a CSV/TSV manifest.
        root: the folder every listed file must lie in; manifest paths are
            relative to it. DVC watches this folder for changes.
        classes: the views the model learns; any other label is refused.
        min_per_class: the fewest files each class may have.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: a label outside ``classes``, a missing column, a path or
            symlink that leaves ``root``, or a class below ``min_per_class``.
    """
    if not source.exists():
        raise FileNotFoundError(f"ingest.source: {source} does not exist")
    root = root.resolve()
    if not source.resolve().is_relative_to(root):
        raise ValueError(f"ingest.source: expected {source} to lie inside {root}")
    if source.is_dir():
        entries = _list_class_folders(source, root, classes)
    else:
        entries = _list_manifest(source, root, classes)
    check_class_counts(
        source, [entry.label for entry in entries], classes, min_per_class
    )
    return entries


def _list_class_folders(
    folder: Path, root: Path, classes: tuple[str, ...]
) -> list[SourceEntry]:
    class_folders = sorted(p for p in folder.iterdir() if p.is_dir() and not _hidden(p))
    unknown = [p.name for p in class_folders if p.name not in classes]
    if unknown:
        raise ValueError(
            f"{folder}: expected only class folders {list(classes)}, found {unknown}"
        )
    entries = [
        SourceEntry(path, path.relative_to(folder).as_posix(), class_folder.name, "")
        for class_folder in class_folders
        for path in sorted(class_folder.rglob("*"))
        if path.is_file() and not _hidden(path)
    ]
    outside = [e.source_path for e in entries if not _resolves_inside(e.path, root)]
    if outside:
        raise ValueError(
            f"{folder}: expected every file to resolve inside {root}; "
            f"{len(outside)} symlinks lead elsewhere: {outside[:SHOWN_ROWS]}"
        )
    return entries


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _resolves_inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root)


def _list_manifest(
    manifest: Path, root: Path, classes: tuple[str, ...]
) -> list[SourceEntry]:
    table = read_manifest(manifest)
    _check_manifest_cells(manifest, table, classes)
    paths = [root / relative for relative in table["path"]]
    outside = [
        f"row {row}: '{relative}'"
        for row, (relative, path) in enumerate(
            zip(table["path"], paths, strict=True), 2
        )
        if not _resolves_inside(path, root)
    ]
    if outside:
        raise ValueError(
            f"{manifest}: expected every path to resolve inside the source root "
            f"{root}; {len(outside)} do not (.., absolute or symlinked paths): "
            f"{outside[:SHOWN_ROWS]}"
        )
    patients = table.get("patient_id", pd.Series([""] * len(table)))
    return [
        SourceEntry(path, relative, label, patient.strip())
        for path, relative, label, patient in zip(
            paths, table["path"], table["label"], patients, strict=True
        )
    ]


def read_manifest(manifest: Path) -> pd.DataFrame:
    """Read a CSV or TSV manifest as text, refusing one without its columns."""
    separator = "\t" if manifest.suffix.lower() == ".tsv" else ","
    table = pd.read_csv(manifest, sep=separator, dtype=str, keep_default_na=False)
    table.columns = [str(column).strip() for column in table.columns]
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(
            f"{manifest}: expected columns path,label[,patient_id]; "
            f"missing {missing}, found {list(table.columns)}"
        )
    return table


def _check_manifest_cells(
    manifest: Path, table: pd.DataFrame, classes: tuple[str, ...]
) -> None:
    empty = [row for row, path in enumerate(table["path"], 2) if not path.strip()]
    if empty:
        raise ValueError(
            f"{manifest}: expected a path on every row; rows {empty[:SHOWN_ROWS]} "
            "have none"
        )
    unknown = sorted(set(table["label"]) - set(classes))
    if unknown:
        raise ValueError(
            f"{manifest}: expected labels in {list(classes)}, got {unknown}"
        )


def check_class_counts(
    source: Path, labels: list[str], classes: tuple[str, ...], min_per_class: int
) -> None:
    """Refuse a dataset where a class has fewer than ``min_per_class`` images."""
    tally = Counter(labels)
    counts = {name: tally[name] for name in classes}
    short = [name for name, count in counts.items() if count < max(min_per_class, 1)]
    if short:
        raise ValueError(
            f"{source}: expected at least {max(min_per_class, 1)} images of every "
            f"class {list(classes)}; {short} fall short (counts {counts})"
        )
