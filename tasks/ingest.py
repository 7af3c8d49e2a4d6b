"""Stage ``ingest``: decode every source radiograph once into ``data/prepared``.

The source is listed and checked first (:mod:`tasks.sources`); a source that
cannot train a classifier stops before anything is written. Files are then
hashed and decoded in parallel, each distinct content once
(:mod:`tasks.decode_cache`). Files that cannot be used are listed in
``rejected.csv`` with a reason and the run goes on. The same content under two
labels is rejected in every copy; under one label it is kept once and the
other copies are listed as ``duplicate``, so every listed file appears in
exactly one of ``manifest.csv`` and ``rejected.csv``. Patient identifiers are
stored only as salted hashes. Finally the data validation report
(:mod:`tasks.validation`) is written, and anomalies fail the stage.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tasks import atomic
from tasks.config import ValidateParams, load_params
from tasks.decode_cache import DecodeJob, decode_entry, prune_cache, settings_key
from tasks.privacy import load_or_create_salt, pseudonymise
from tasks.radiograph import DecodeLimits
from tasks.sources import SourceEntry, check_class_counts, list_source
from tasks.validation import (
    DataAnomalyError,
    build_validation_report,
    check_anomalies,
    read_committed_report,
    render_validation_markdown,
)

log = logging.getLogger(__name__)

PREPARED_DIR = Path("data/prepared")
VALIDATION_FILE = Path("metrics/data_validation.json")
DECODE_CACHE_DIR = Path(".laterality/decode-cache")
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
REJECTED_COLUMNS = ["source_path", "label", "sha256", "reason", "detail"]


@dataclass(frozen=True)
class IngestResult:
    """What one ingest run produced, and how much of it the cache answered."""

    summary: dict[str, Any]
    report: dict[str, Any]
    decoded: int
    reused: int


def decode_sources(
    entries: list[SourceEntry],
    images_dir: Path,
    cache_folder: Path,
    size: int,
    limits: DecodeLimits,
    salt: bytes,
    workers: int,
    start_method: str = "forkserver",
) -> list[dict[str, object]]:
    """Decode ``entries`` on ``workers`` processes; return records in order.

    ``forkserver`` starts workers from a clean single-threaded server, which
    is safe inside processes that already run threads (Prefect, TensorFlow,
    pytest); the stage's own entry point, which has no threads, uses the
    faster ``fork``.
    """
    images_dir.mkdir(parents=True, exist_ok=True)
    jobs = (
        DecodeJob(e.path, e.source_path, cache_folder, images_dir, size, limits, salt)
        for e in entries
    )
    if workers <= 1 or len(entries) < 2:
        return [decode_entry(job) for job in jobs]
    chunksize = max(1, min(16, len(entries) // (workers * 8)))
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        context.set_forkserver_preload(["tasks.ingest", "tasks.dicom"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(decode_entry, jobs, chunksize=chunksize))


def _table(
    entries: list[SourceEntry], records: list[dict[str, object]], salt: bytes
) -> pd.DataFrame:
    """Join what the source said about each file with what decoding found.

    A manifest's patient id wins over the one inside a DICOM; either way only
    its salted hash enters the table.
    """
    rows = []
    for entry, record in zip(entries, records, strict=True):
        from_dicom = str(record.pop("dicom_patient_hash", "") or "")
        rows.append(
            {
                "source_path": entry.source_path,
                "label": entry.label,
                "patient_hash": pseudonymise(entry.patient_id, salt) or from_dicom,
                **record,
            }
        )
    return pd.DataFrame(rows)


def resolve_duplicates(
    accepted: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Keep one row per identical file; reject files seen under two labels.

    Returns:
        The kept rows, the rejected rows of conflicting files, and the rows of
        same-label copies that were dropped (reason ``duplicate``).
    """
    labels_per_hash = accepted.groupby("sha256")["label"].nunique()
    conflicting = accepted["sha256"].map(labels_per_hash) > 1
    conflicts = accepted.loc[conflicting].assign(
        reason="conflicting-labels",
        detail="identical content appears under more than one label",
    )
    consistent = accepted.loc[~conflicting]
    repeated = consistent.duplicated("sha256", keep="first")
    first_path = consistent.drop_duplicates("sha256").set_index("sha256")["source_path"]
    copies = consistent.loc[repeated]
    copies = copies.assign(
        reason="duplicate",
        detail="same content as " + copies["sha256"].map(first_path),
    )
    return consistent.loc[~repeated], conflicts, copies


@contextlib.contextmanager
def _cache_root(cache_dir: Path | None) -> Iterator[Path]:
    """Yield ``cache_dir``, or a folder that lasts one run when it is None."""
    if cache_dir is not None:
        yield cache_dir
        return
    with tempfile.TemporaryDirectory(prefix="decode-cache-") as folder:
        yield Path(folder)


def ingest_source(
    source: Path,
    root: Path,
    out_dir: Path,
    classes: tuple[str, ...],
    size: int,
    limits: DecodeLimits,
    workers: int,
    salt: bytes,
    *,
    min_per_class: int = 1,
    cache_dir: Path | None = None,
    thresholds: ValidateParams | None = None,
    previous: dict[str, Any] | None = None,
    report_file: Path | None = None,
    start_method: str = "forkserver",
) -> IngestResult:
    """Build ``out_dir`` (manifest, rejects, images, report) from ``source``.

    ``out_dir`` is replaced atomically and only on success. ``report_file``
    is written even when anomalies stop the run, so it can say why.

    Raises:
        FileNotFoundError, ValueError: the source is refused (see
            :func:`tasks.sources.list_source`), or too few images survive.
        DataAnomalyError: ``thresholds`` find anomalies against ``previous``.
    """
    entries = list_source(source, root, classes, min_per_class)
    log.info("ingest: %d files listed from %s", len(entries), source)
    key = settings_key(size, limits, salt)
    with _cache_root(cache_dir) as cache, atomic.atomic_directory(out_dir) as staging:
        records = decode_sources(
            entries,
            staging / "images",
            cache / key,
            size,
            limits,
            salt,
            workers,
            start_method,
        )
        table = _table(entries, records, salt)
        decoded = int(table["decoded"].sum())
        log.info("ingest: %d decoded, %d from the cache", decoded, len(table) - decoded)
        kept, rejected, copies = _sort_rows(table)
        check_class_counts(source, kept["label"].tolist(), classes, min_per_class)
        report = build_validation_report(
            kept, rejected, len(copies), len(table), classes
        )
        if thresholds is not None:
            report["anomalies"] = check_anomalies(report, previous, thresholds)
        _write_report(report, staging, report_file)
        if report["anomalies"]:
            raise DataAnomalyError(_anomaly_message(report, report_file))
        summary = _write_tables(staging, kept, pd.concat([rejected, copies]))
    if cache_dir is not None:
        prune_cache(cache_dir, key, set(table["sha256"]))
    log.info("ingest: %s", summary)
    return IngestResult(summary, report, decoded, len(table) - decoded)


def _sort_rows(table: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    """Split the table into kept rows, rejected rows and dropped copies."""
    ok = table["status"] == "ok"
    kept, conflicts, copies = resolve_duplicates(table.loc[ok])
    rejected = pd.concat([table.loc[~ok], conflicts], ignore_index=True)
    return kept, rejected, copies


def _write_report(
    report: dict[str, Any], staging: Path, report_file: Path | None
) -> None:
    if report_file is not None:
        atomic.write_json(report_file, report)
    atomic.write_text(staging / "validation.md", render_validation_markdown(report))


def _anomaly_message(report: dict[str, Any], report_file: Path | None) -> str:
    where = f"; report in {report_file}" if report_file else ""
    return (
        f"ingest: the data validation found {len(report['anomalies'])} "
        f"anomalies{where}:\n" + "\n".join(f"- {a}" for a in report["anomalies"])
    )


def _write_tables(
    staging: Path, kept: pd.DataFrame, rejected: pd.DataFrame
) -> dict[str, Any]:
    """Write manifest, rejects and summary into ``staging``; return the summary."""
    _remove_orphans(staging, kept)
    manifest = kept.assign(image="images/" + kept["sha256"] + ".png")
    manifest = manifest[MANIFEST_COLUMNS].sort_values("image").reset_index(drop=True)
    for column in ("original_width", "original_height"):
        manifest[column] = manifest[column].astype(int)
    rejected = rejected.fillna({"sha256": ""})[REJECTED_COLUMNS]
    rejected = rejected.sort_values(["source_path", "reason"]).reset_index(drop=True)
    atomic.write_csv(staging / "manifest.csv", manifest)
    atomic.write_csv(staging / "rejected.csv", rejected)
    copies = rejected["reason"] == "duplicate"
    summary = {
        "images_per_class": _counts(manifest["label"]),
        "rejected_per_reason": _counts(rejected.loc[~copies, "reason"]),
        "duplicates_dropped": int(copies.sum()),
    }
    atomic.write_json(staging / "summary.json", summary)
    return summary


def _counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in values.value_counts().sort_index().items()}


def _remove_orphans(staging: Path, kept: pd.DataFrame) -> None:
    """Delete PNGs of files rejected after decoding (conflicting labels)."""
    keep = set(kept["sha256"])
    for png in (staging / "images").glob("*.png"):
        if png.stem not in keep:
            png.unlink()


def main() -> None:
    """Run the stage with the settings in ``params.yaml``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    params = load_params()
    settings = params.ingest
    try:
        ingest_source(
            source=Path(settings.source),
            root=Path(settings.root),
            out_dir=PREPARED_DIR,
            classes=params.base.classes,
            size=params.base.image_size,
            limits=DecodeLimits(settings.min_side, settings.max_pixels),
            workers=settings.workers or len(os.sched_getaffinity(0)),
            salt=load_or_create_salt(),
            min_per_class=settings.min_per_class,
            cache_dir=DECODE_CACHE_DIR,
            thresholds=params.validate,
            previous=read_committed_report(Path("."), VALIDATION_FILE),
            report_file=VALIDATION_FILE,
            start_method="fork",
        )
    except (FileNotFoundError, ValueError) as error:
        log.error("%s", error)
        raise SystemExit(1) from error


if __name__ == "__main__":
    main()
