"""Stage ``ingest``: decode every source radiograph once into ``data/prepared``.

The source is either a folder with one sub-folder per view (what Keras'
``flow_from_directory`` reads) or a CSV/TSV manifest with ``path,label`` and an
optional ``patient_id`` column (what ``flow_from_dataframe`` reads). Files that
cannot be used are listed in ``rejected.csv`` with a reason and the run goes on;
a source that cannot train a classifier stops before anything is written.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from tasks import atomic
from tasks.config import load_params
from tasks.privacy import load_or_create_salt, pseudonymise
from tasks.radiograph import DecodeLimits, RadiographError, prepare_radiograph

log = logging.getLogger(__name__)

PREPARED_DIR = Path("data/prepared")
MANIFEST_COLUMNS = [
    "image",
    "label",
    "sha256",
    "patient_hash",
    "source_path",
    "file_format",
    "original_width",
    "original_height",
]
REJECTED_COLUMNS = ["source_path", "reason", "detail"]


@dataclass(frozen=True)
class SourceEntry:
    """One file named by the source, before decoding."""

    path: Path
    source_path: str
    label: str
    patient_id: str


def list_source(
    source: Path, root: Path, classes: tuple[str, ...]
) -> list[SourceEntry]:
    """List the radiographs a folder tree or manifest names, with their labels.

    Args:
        source: a folder of class folders, or a CSV/TSV manifest.
        root: the folder every listed file must lie in; manifest paths are
            relative to it. DVC watches this folder for changes.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: a label outside ``classes``, a missing column, a path that
            leaves ``root``, or fewer than two non-empty classes.
    """
    if not source.exists():
        raise FileNotFoundError(f"ingest.source: {source} does not exist")
    root = root.resolve()
    if not source.resolve().is_relative_to(root):
        raise ValueError(f"ingest.source: expected {source} to lie inside {root}")
    if source.is_dir():
        entries = _list_class_folders(source, classes)
    else:
        entries = _list_manifest(source, root, classes)
    _check_classes(source, [entry.label for entry in entries], classes)
    return entries


def _list_class_folders(root: Path, classes: tuple[str, ...]) -> list[SourceEntry]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not _hidden(p))
    unknown = [p.name for p in folders if p.name not in classes]
    if unknown:
        raise ValueError(
            f"{root}: expected only class folders {list(classes)}, found {unknown}"
        )
    return [
        SourceEntry(path, path.relative_to(root).as_posix(), folder.name, "")
        for folder in folders
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not _hidden(path)
    ]


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _list_manifest(
    manifest: Path, root: Path, classes: tuple[str, ...]
) -> list[SourceEntry]:
    separator = "\t" if manifest.suffix.lower() == ".tsv" else ","
    table = pd.read_csv(manifest, sep=separator, dtype=str, keep_default_na=False)
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise ValueError(
            f"{manifest}: expected columns path,label[,patient_id]; "
            f"missing {sorted(missing)}, found {list(table.columns)}"
        )
    unknown = sorted(set(table["label"]) - set(classes))
    if unknown:
        raise ValueError(f"{manifest}: labels {unknown} are not in {list(classes)}")
    patients = table.get("patient_id", pd.Series([""] * len(table)))
    return [
        SourceEntry(_inside(root, relative, manifest), relative, label, patient)
        for relative, label, patient in zip(
            table["path"], table["label"], patients, strict=True
        )
    ]


def _inside(root: Path, relative: str, manifest: Path) -> Path:
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root):
        raise ValueError(
            f"{manifest}: path '{relative}' resolves outside the source root {root}"
        )
    return resolved


def _check_classes(source: Path, labels: list[str], classes: tuple[str, ...]) -> None:
    counts = {name: 0 for name in classes}
    for label in labels:
        counts[label] += 1
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        raise ValueError(
            f"{source}: expected images of every class {list(classes)}, "
            f"but {empty} has none (counts {counts})"
        )


@dataclass(frozen=True)
class _Job:
    entry: SourceEntry
    images_dir: Path
    size: int
    limits: DecodeLimits


def _prepare_one(job: _Job) -> dict[str, object]:
    """Decode one file and write its PNG; return its manifest or reject row."""
    entry = job.entry
    try:
        prepared = prepare_radiograph(entry.path, job.size, job.limits)
    except RadiographError as error:
        return {"source_path": entry.source_path, "reason": error.reason,
                "detail": error.detail}
    except OSError as error:
        return {"source_path": entry.source_path, "reason": "unreadable",
                "detail": error.strerror or str(error)}
    image = f"images/{prepared.sha256}.png"
    with atomic.atomic_path(job.images_dir.parent / image, suffix=".png") as tmp:
        Image.fromarray(prepared.pixels).save(tmp, format="PNG")
    return {
        "image": image,
        "label": entry.label,
        "sha256": prepared.sha256,
        "patient_id": entry.patient_id,
        "source_path": entry.source_path,
        "file_format": prepared.file_format,
        "original_width": prepared.original_width,
        "original_height": prepared.original_height,
    }


def decode_sources(
    entries: list[SourceEntry],
    out_dir: Path,
    size: int,
    limits: DecodeLimits,
    workers: int,
) -> list[dict[str, object]]:
    """Decode ``entries`` on ``workers`` processes into ``out_dir/images``."""
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    jobs = [_Job(entry, images_dir, size, limits) for entry in entries]
    if workers <= 1:
        return [_prepare_one(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_prepare_one, jobs, chunksize=8))


def resolve_duplicates(
    accepted: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Keep one row per identical file; reject files seen under two labels.

    Returns:
        The kept rows, the rejected rows, and how many same-label copies were
        dropped.
    """
    labels_per_hash = accepted.groupby("sha256")["label"].nunique()
    conflicting = accepted["sha256"].map(labels_per_hash) > 1
    rejected = accepted.loc[conflicting, ["source_path"]].assign(
        reason="conflicting-labels",
        detail="identical content appears under more than one label",
    )
    consistent = accepted.loc[~conflicting]
    kept = consistent.drop_duplicates("sha256", keep="first")
    return kept, rejected, len(consistent) - len(kept)


def ingest_source(
    source: Path,
    root: Path,
    out_dir: Path,
    classes: tuple[str, ...],
    size: int,
    limits: DecodeLimits,
    workers: int,
    salt: bytes,
) -> dict[str, object]:
    """Build ``out_dir`` (manifest, rejects, images) from ``source`` atomically.

    Returns:
        A summary with counts per class, rejects per reason and duplicates.
    """
    entries = list_source(source, root, classes)
    log.info("ingest: %d files listed from %s", len(entries), source)
    with atomic.atomic_directory(out_dir) as staging:
        rows = decode_sources(entries, staging, size, limits, workers)
        accepted = pd.DataFrame([row for row in rows if "image" in row])
        rejected = pd.DataFrame(
            [row for row in rows if "image" not in row], columns=REJECTED_COLUMNS
        )
        if accepted.empty:
            raise ValueError(f"{source}: none of {len(entries)} files could be used")
        accepted, conflicts, duplicates = resolve_duplicates(accepted)
        _remove_orphans(staging, accepted)
        rejected = pd.concat([rejected, conflicts], ignore_index=True)
        manifest = _finish_manifest(accepted, salt)
        _check_classes(source, manifest["label"].tolist(), classes)
        atomic.write_csv(staging / "manifest.csv", manifest)
        atomic.write_csv(staging / "rejected.csv", rejected[REJECTED_COLUMNS])
        summary = _summarise(manifest, rejected, duplicates)
        atomic.write_json(staging / "summary.json", summary)
    log.info("ingest: %s", summary)
    return summary


def _remove_orphans(staging: Path, accepted: pd.DataFrame) -> None:
    """Delete PNGs written for files that were rejected after decoding."""
    keep = {staging / image for image in accepted["image"]}
    for png in (staging / "images").glob("*.png"):
        if png not in keep:
            png.unlink()


def _finish_manifest(accepted: pd.DataFrame, salt: bytes) -> pd.DataFrame:
    hashed = accepted["patient_id"].map(lambda value: pseudonymise(value, salt))
    manifest = accepted.assign(patient_hash=hashed)[MANIFEST_COLUMNS]
    return manifest.sort_values("image").reset_index(drop=True)


def _summarise(
    manifest: pd.DataFrame, rejected: pd.DataFrame, duplicates: int
) -> dict[str, object]:
    return {
        "images_per_class": manifest["label"].value_counts().sort_index().to_dict(),
        "rejected_per_reason": rejected["reason"].value_counts().sort_index().to_dict(),
        "duplicates_dropped": duplicates,
    }


def main() -> None:
    """Run the stage with the settings in ``params.yaml``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    params = load_params()
    settings = params.ingest
    ingest_source(
        source=Path(settings.source),
        root=Path(settings.root),
        out_dir=PREPARED_DIR,
        classes=params.base.classes,
        size=params.base.image_size,
        limits=DecodeLimits(settings.min_side, settings.max_pixels),
        workers=settings.workers or os.cpu_count() or 1,
        salt=load_or_create_salt(),
    )


if __name__ == "__main__":
    main()
