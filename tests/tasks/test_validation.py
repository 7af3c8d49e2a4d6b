"""Tests for tasks.validation: the data report and its anomaly thresholds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tasks.config import ValidateParams
from tasks.validation import (
    build_validation_report,
    check_anomalies,
    read_committed_report,
    render_validation_markdown,
)
from tests.synthetic import CLASSES

THRESHOLDS = ValidateParams(
    max_class_share_change=0.1,
    max_intensity_shift=20,
    max_image_count_drop=0.25,
    max_reject_fraction=0.05,
    max_duplicate_fraction=0.1,
)
OFF = ValidateParams(None, None, None, None, None)


def _kept(frontal: int, lateral: int, intensity: float = 120.0) -> pd.DataFrame:
    rows = [
        {
            "label": label,
            "patient_hash": f"p{index // 2}" if label == "frontal" else "",
            "file_format": "PNG" if index % 2 else "JPEG",
            "original_width": 400 + index,
            "original_height": 200,
            "intensity_mean": intensity + (10 if label == "lateral" else 0),
            "intensity_std": 40.0,
            "clipped_fraction": 0.01,
        }
        for label, count in (("frontal", frontal), ("lateral", lateral))
        for index in range(count)
    ]
    return pd.DataFrame(rows)


def _report(frontal=8, lateral=2, rejects=0, duplicates=0, intensity=120.0):
    rejected = pd.DataFrame({"reason": ["empty-file"] * rejects})
    listed = frontal + lateral + rejects + duplicates
    kept = _kept(frontal, lateral, intensity)
    return build_validation_report(kept, rejected, duplicates, listed, CLASSES)


def test_build_validation_report_counts_classes_patients_and_rejects():
    report = _report(frontal=8, lateral=2, rejects=2, duplicates=1)

    assert report["listed"] == 13
    assert report["images"] == 10
    assert report["patients"] == 4
    assert report["images_without_patient"] == 2
    assert report["classes"]["frontal"]["images"] == 8
    assert report["classes"]["lateral"]["share"] == 0.2
    assert report["classes"]["frontal"]["original_width"] == {
        "min": 400.0,
        "median": 403.5,
        "mean": 403.5,
        "max": 407.0,
    }
    assert report["classes"]["lateral"]["aspect_ratio"]["max"] == 2.005
    assert report["formats"] == {"JPEG": 5, "PNG": 5}
    assert report["rejected"] == {
        "total": 2,
        "fraction": 0.1538,
        "per_reason": {"empty-file": 2},
    }
    assert report["duplicates"] == {"dropped": 1, "fraction": 0.0769}
    json.dumps(report)  # serialisable as a DVC metric


def test_check_anomalies_finds_nothing_in_unchanged_data():
    report = _report()

    assert check_anomalies(report, report, THRESHOLDS) == []


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (_report(frontal=5, lateral=5), "share of 'frontal' moved from 80.0% to 50.0%"),
        (_report(intensity=160.0), "mean intensity of 'frontal' moved from 120.0"),
        (_report(frontal=4, lateral=1), "images fell from 10 to 5"),
    ],
)
def test_check_anomalies_flags_drift_from_previous_version(current, expected):
    anomalies = check_anomalies(current, _report(), THRESHOLDS)

    assert any(text.startswith(expected) for text in anomalies), anomalies


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (_report(rejects=1), "1 of 11 files rejected (9.1%)"),
        (_report(duplicates=2), "2 duplicate copies (16.7%)"),
    ],
)
def test_check_anomalies_flags_rejects_and_duplicates_without_previous(
    current, expected
):
    anomalies = check_anomalies(current, None, THRESHOLDS)

    assert anomalies[0].startswith(expected)


def test_check_anomalies_skips_thresholds_set_to_none():
    current = _report(frontal=2, lateral=8, rejects=5, duplicates=5, intensity=250)

    assert check_anomalies(current, _report(), OFF) == []


def test_render_validation_markdown_shows_views_rejects_and_anomalies():
    report = _report(rejects=1)
    report["anomalies"] = ["1 of 11 files rejected (9.1%)"]

    text = render_validation_markdown(report)

    assert text.startswith("# Data validation\n")
    assert "- 1 of 11 files rejected (9.1%)" in text
    assert "| frontal | 8 | 80.0% | 403.5 x 200 | 120 | 0.01 |" in text
    assert "| empty-file | 1 |" in text


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def test_read_committed_report_reads_head_not_workspace(tmp_path):
    report = tmp_path / "metrics" / "data_validation.json"
    report.parent.mkdir()
    report.write_text(json.dumps({"images": 10}))
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "data v1")
    report.write_text(json.dumps({"images": 99}))

    previous = read_committed_report(tmp_path, Path("metrics/data_validation.json"))

    assert previous == {"images": 10}


def test_read_committed_report_returns_none_outside_git(tmp_path):
    assert read_committed_report(tmp_path, Path("metrics/x.json")) is None
