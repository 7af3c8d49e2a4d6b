"""Describe a prepared dataset and flag what changed suspiciously since the last.

In the spirit of TFX's StatisticsGen and ExampleValidator: ingest writes a
report of per-class counts and shares, image size and intensity statistics,
rejects by reason and duplicates, as JSON (``metrics/data_validation.json``, a
DVC metric) and as Markdown (for the Prefect artifact and
``data/prepared/validation.md``).

The previous dataset version is the report committed at git ``HEAD``: the
pipeline commits ``metrics/`` with every registered model, so ``HEAD`` holds
the report of the data the current champion was trained on, pinned by the
same commit's ``dvc.lock``. Without git or without a committed report, the
checks that need a previous version are skipped and the log says so. To
accept a deliberate change (say, many new laterals), raise the threshold in
``params.yaml`` for that run, or set it to ``null``, so the decision is in
git history.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.config import ValidateParams

log = logging.getLogger(__name__)

Report = dict[str, Any]
SIZE_COLUMNS = ("original_width", "original_height")
INTENSITY_COLUMNS = ("intensity_mean", "intensity_std", "clipped_fraction")


class DataAnomalyError(ValueError):
    """The prepared data differ from what the thresholds in params allow."""


def build_validation_report(
    kept: pd.DataFrame,
    rejected: pd.DataFrame,
    duplicates: int,
    listed: int,
    classes: tuple[str, ...],
) -> Report:
    """Summarise kept images per class, rejects by reason and duplicates.

    Args:
        kept: one row per kept image with ``label``, ``patient_hash``,
            ``file_format``, the size and the intensity columns.
        rejected: one row per rejected file with ``reason`` (duplicates are
            counted by ``duplicates``, not listed here).
        duplicates: same-label copies dropped.
        listed: files the source named.
    """
    patients = kept["patient_hash"].fillna("").astype(str)
    return {
        "listed": listed,
        "images": len(kept),
        "patients": int(patients[patients != ""].nunique()),
        "images_without_patient": int((patients == "").sum()),
        "classes": {name: _describe_class(kept, name) for name in classes},
        "formats": _counts(kept["file_format"]),
        "rejected": {
            "total": len(rejected),
            "fraction": _share(len(rejected), listed),
            "per_reason": _counts(rejected["reason"]),
        },
        "duplicates": {"dropped": duplicates, "fraction": _share(duplicates, listed)},
        "anomalies": [],
    }


def _describe_class(kept: pd.DataFrame, name: str) -> dict[str, Any]:
    rows = kept[kept["label"] == name]
    aspect = rows["original_width"] / rows["original_height"]
    summary = {"images": len(rows), "share": _share(len(rows), len(kept))}
    for column in (*SIZE_COLUMNS, *INTENSITY_COLUMNS):
        summary[column] = _statistics(rows[column])
    summary["aspect_ratio"] = _statistics(aspect)
    return summary


def _statistics(values: pd.Series) -> dict[str, float]:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return {}
    return {
        "min": round(float(values.min()), 3),
        "median": round(float(values.median()), 3),
        "mean": round(float(values.mean()), 3),
        "max": round(float(values.max()), 3),
    }


def _counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in values.value_counts().sort_index().items()}


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def check_anomalies(
    report: Report, previous: Report | None, thresholds: ValidateParams
) -> list[str]:
    """Return one sentence per threshold in ``thresholds`` that ``report`` breaks.

    A threshold set to ``None`` is not checked. Checks against ``previous``
    (class shares, mean intensity, image count) are skipped when it is None.
    """
    anomalies = _fraction_anomalies(report, thresholds)
    if previous is not None:
        anomalies += _drift_anomalies(report, previous, thresholds)
    return anomalies


def _fraction_anomalies(report: Report, thresholds: ValidateParams) -> list[str]:
    found = []
    limit = thresholds.max_reject_fraction
    fraction = report["rejected"]["fraction"]
    if limit is not None and fraction > limit:
        found.append(
            f"{report['rejected']['total']} of {report['listed']} files rejected "
            f"({fraction:.1%}), above max_reject_fraction {limit:.1%}"
        )
    limit = thresholds.max_duplicate_fraction
    fraction = report["duplicates"]["fraction"]
    if limit is not None and fraction > limit:
        found.append(
            f"{report['duplicates']['dropped']} duplicate copies ({fraction:.1%}), "
            f"above max_duplicate_fraction {limit:.1%}"
        )
    return found


def _drift_anomalies(
    report: Report, previous: Report, thresholds: ValidateParams
) -> list[str]:
    found = []
    drop = thresholds.max_image_count_drop
    before, now = previous.get("images", 0), report["images"]
    if drop is not None and before and (before - now) / before > drop:
        found.append(
            f"images fell from {before} to {now}, a drop above "
            f"max_image_count_drop {drop:.0%}"
        )
    for name, current in report["classes"].items():
        earlier = previous.get("classes", {}).get(name)
        if earlier:
            found += _class_drift(name, current, earlier, thresholds)
    return found


def _class_drift(
    name: str, current: Report, earlier: Report, thresholds: ValidateParams
) -> list[str]:
    found = []
    limit = thresholds.max_class_share_change
    share_before = earlier.get("share", current["share"])
    change = abs(current["share"] - share_before)
    if limit is not None and change > limit:
        found.append(
            f"share of '{name}' moved from {share_before:.1%} to "
            f"{current['share']:.1%}, more than max_class_share_change {limit:.1%}"
        )
    limit = thresholds.max_intensity_shift
    mean_now = current.get("intensity_mean", {}).get("mean")
    mean_before = earlier.get("intensity_mean", {}).get("mean")
    if (
        None not in (limit, mean_now, mean_before)
        and abs(mean_now - mean_before) > limit
    ):
        found.append(
            f"mean intensity of '{name}' moved from {mean_before:.1f} to "
            f"{mean_now:.1f}, more than max_intensity_shift {limit} grey levels "
            "(an inverted or re-windowed export?)"
        )
    return found


def read_committed_report(repo: Path, path: Path) -> Report | None:
    """Return the report committed at git ``HEAD``, or None if there is none."""
    try:
        done = subprocess.run(
            ["git", "show", f"HEAD:./{path.as_posix()}"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        done = None
    if done is None or done.returncode != 0:
        log.info("validation: no %s committed at HEAD; drift checks skipped", path)
        return None
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        log.warning("validation: %s at HEAD is not JSON; drift checks skipped", path)
        return None


def render_validation_markdown(report: Report) -> str:
    """Write the report as Markdown for a Prefect artifact or a reader."""
    rejected, duplicates = report["rejected"], report["duplicates"]
    lines = [
        "# Data validation",
        "",
        f"{report['images']} images kept of {report['listed']} listed; "
        f"{rejected['total']} rejected, {duplicates['dropped']} duplicate copies "
        f"dropped; {report['patients']} patients "
        f"({report['images_without_patient']} images without a patient id).",
        "",
        "## Anomalies",
        "",
        *([f"- {text}" for text in report["anomalies"]] or ["None."]),
        "",
        "## Views",
        "",
        "| view | images | share | median size | mean intensity | clipped |",
        "|---|---|---|---|---|---|",
        *(_class_row(name, view) for name, view in report["classes"].items()),
        "",
        "## Rejected files by reason",
        "",
        *_count_table("reason", rejected["per_reason"]),
        "",
        "## Formats",
        "",
        *_count_table("format", report["formats"]),
    ]
    return "\n".join(lines) + "\n"


def _class_row(name: str, view: Report) -> str:
    width = _number(view["original_width"].get("median"))
    height = _number(view["original_height"].get("median"))
    intensity = _number(view["intensity_mean"].get("mean"))
    clipped = _number(view["clipped_fraction"].get("mean"))
    return (
        f"| {name} | {view['images']} | {view['share']:.1%} | {width} x {height} | "
        f"{intensity} | {clipped} |"
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _count_table(heading: str, counts: dict[str, int]) -> list[str]:
    if not counts:
        return ["None."]
    return [f"| {heading} | files |", "|---|---|"] + [
        f"| {name} | {count} |" for name, count in counts.items()
    ]
