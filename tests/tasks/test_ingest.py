"""Tests for tasks.ingest: the stage from a source folder to data/prepared."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tasks import ingest
from tasks.config import ValidateParams
from tasks.ingest import ingest_source
from tasks.privacy import pseudonymise
from tasks.radiograph import DecodeLimits
from tasks.validation import DataAnomalyError
from tests.conftest import REPO_ROOT, SAMPLE_DIR
from tests.synthetic import CLASSES, write_class_folders, write_manifest_source
from tests.tasks.radiograph_files import (
    MONOCHROME1_FIXTURE,
    MONOCHROME2_FIXTURE,
    encode,
    gradient,
    save,
    write_dicom,
)

SIZE = 64
STRICT = ValidateParams(0.1, 20, 0.25, 0.05, 0.1)


def _ingest(source: Path, out: Path, salt: bytes, **options):
    options.setdefault("limits", DecodeLimits())
    options.setdefault("workers", 1)
    return ingest_source(
        source,
        source if source.is_dir() else source.parent,
        out,
        CLASSES,
        SIZE,
        salt=salt,
        **options,
    )


def _read(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / name, dtype=str, keep_default_na=False)


@pytest.fixture
def source(tmp_path) -> Path:
    return write_class_folders(tmp_path / "source", per_class=4, size=96)


def test_ingest_source_prepares_folder_source(source, tmp_path, salt):
    out = tmp_path / "prepared"

    result = _ingest(source, out, salt)

    manifest = _read(out, "manifest.csv")
    assert result.summary == {
        "images_per_class": {"frontal": 4, "lateral": 4},
        "rejected_per_reason": {},
        "duplicates_dropped": 0,
    }
    assert list(manifest.columns) == ingest.MANIFEST_COLUMNS
    assert len(list((out / "images").glob("*.png"))) == 8
    assert (manifest["image"] == "images/" + manifest["sha256"] + ".png").all()
    assert set(manifest["original_width"]) == {"96"}
    assert _read(out, "rejected.csv").empty
    assert (out / "validation.md").read_text().startswith("# Data validation")


def test_ingest_source_hashes_manifest_patient_ids(tmp_path, salt):
    manifest = write_manifest_source(tmp_path / "source", per_class=4, size=96)
    out = tmp_path / "prepared"

    result = _ingest(manifest, out, salt)

    prepared = _read(out, "manifest.csv")
    expected = {pseudonymise(f"{v}-patient-{i}", salt) for v in CLASSES for i in (0, 1)}
    assert set(prepared["patient_hash"]) == expected
    assert "-patient-" not in (out / "manifest.csv").read_text()
    assert result.report["patients"] == 4


def _plant_bad_files(folder: Path) -> None:
    (folder / "empty.png").write_bytes(b"")
    for name, file_format in (("cut.jpg", "JPEG"), ("cut.png", "PNG")):
        content = encode(gradient(96, 96), file_format)
        (folder / name).write_bytes(content[: len(content) // 2])
    (folder / "notes.txt").write_text("patient list\n" * 20)
    (folder / "anim.gif").write_bytes(encode(gradient(96, 96), "GIF"))
    save(gradient(40, 90), folder / "tiny.png")
    save(np.full((96, 96), 9, np.uint8), folder / "flat.png")
    save(gradient(300, 300), folder / "huge.png")


def test_ingest_source_rejects_bad_files_with_reasons_and_goes_on(
    source, tmp_path, salt
):
    _plant_bad_files(source / "frontal")
    out = tmp_path / "prepared"

    result = _ingest(source, out, salt, limits=DecodeLimits(64, 200 * 200))

    rejected = _read(out, "rejected.csv").set_index("source_path")["reason"]
    assert rejected.to_dict() == {
        "frontal/anim.gif": "unsupported-format",
        "frontal/cut.jpg": "truncated-or-corrupt",
        "frontal/cut.png": "truncated-or-corrupt",
        "frontal/empty.png": "empty-file",
        "frontal/flat.png": "constant-image",
        "frontal/huge.png": "too-large",
        "frontal/notes.txt": "not-an-image",
        "frontal/tiny.png": "too-small",
    }
    assert result.summary["images_per_class"] == {"frontal": 4, "lateral": 4}
    assert sum(result.summary["rejected_per_reason"].values()) == 8
    assert result.report["rejected"]["per_reason"]["truncated-or-corrupt"] == 2


def test_ingest_source_rejects_same_content_under_two_labels(source, tmp_path, salt):
    shutil.copy(source / "frontal" / "frontal-000.png", source / "lateral" / "x.png")
    out = tmp_path / "prepared"

    result = _ingest(source, out, salt)

    rejected = _read(out, "rejected.csv")
    assert sorted(rejected["source_path"]) == [
        "frontal/frontal-000.png",
        "lateral/x.png",
    ]
    assert set(rejected["reason"]) == {"conflicting-labels"}
    assert result.summary["images_per_class"] == {"frontal": 3, "lateral": 4}
    assert len(list((out / "images").glob("*.png"))) == 7


def test_ingest_source_keeps_same_label_copy_once(source, tmp_path, salt):
    shutil.copy(source / "frontal" / "frontal-000.png", source / "frontal" / "y.png")
    out = tmp_path / "prepared"

    result = _ingest(source, out, salt)

    rejected = _read(out, "rejected.csv")
    assert rejected[["source_path", "reason"]].values.tolist() == [
        ["frontal/y.png", "duplicate"]
    ]
    assert rejected["detail"][0] == "same content as frontal/frontal-000.png"
    assert result.summary["images_per_class"] == {"frontal": 4, "lateral": 4}
    assert result.summary["duplicates_dropped"] == 1
    assert result.summary["rejected_per_reason"] == {}


def _escape_manifest(source: Path) -> Path:
    path = source / "manifest.csv"
    path.write_text(
        "path,label\n../../etc/passwd,frontal\nlateral/lateral-0.png,lateral\n"
    )
    return path


@pytest.mark.parametrize(
    ("make_source", "options", "error"),
    [
        (lambda s: s / "missing", {}, FileNotFoundError),
        (lambda s: shutil.rmtree(s / "lateral") or s, {}, ValueError),
        (lambda s: s, {"min_per_class": 5}, ValueError),
        (_escape_manifest, {}, ValueError),
    ],
)
def test_ingest_source_refuses_before_writing_anything(
    source, tmp_path, salt, make_source, options, error
):
    out, cache = tmp_path / "prepared", tmp_path / "cache"

    with pytest.raises(error):
        _ingest(make_source(source), out, salt, cache_dir=cache, **options)

    assert not out.exists()
    assert not cache.exists()


def test_ingest_source_keeps_old_output_when_too_few_images_survive(
    source, tmp_path, salt
):
    for path in (source / "lateral").iterdir():
        path.write_bytes(b"")
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "manifest.csv").write_text("previous run")

    with pytest.raises(ValueError, match=r"\['lateral'\] fall short"):
        _ingest(source, out, salt)

    assert (out / "manifest.csv").read_text() == "previous run"


def test_ingest_source_decodes_only_new_content_on_rerun(tmp_path, salt):
    source = write_class_folders(tmp_path / "source", per_class=10, size=96)
    out, cache = tmp_path / "prepared", tmp_path / "cache"

    first = _ingest(source, out, salt, cache_dir=cache)
    manifest = (out / "manifest.csv").read_bytes()
    again = _ingest(source, out, salt, cache_dir=cache)
    write_class_folders(tmp_path / "more", per_class=5, size=96, seed=7)
    for view in CLASSES:
        for path in (tmp_path / "more" / view).iterdir():
            shutil.copy(path, source / view / f"new-{path.name}")
    grown = _ingest(source, out, salt, cache_dir=cache)

    assert (first.decoded, first.reused) == (20, 0)
    assert (again.decoded, again.reused) == (0, 20)
    assert (out / "manifest.csv").read_bytes() != manifest
    assert (grown.decoded, grown.reused) == (10, 20)
    assert grown.summary["images_per_class"] == {"frontal": 15, "lateral": 15}


def test_ingest_source_gives_same_output_on_two_workers(source, tmp_path, salt):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"

    _ingest(source, serial, salt, workers=1)
    _ingest(source, parallel, salt, workers=2)

    for name in ("manifest.csv", "rejected.csv", "summary.json", "validation.md"):
        assert (serial / name).read_bytes() == (parallel / name).read_bytes()
    for png in (serial / "images").iterdir():
        assert (parallel / "images" / png.name).read_bytes() == png.read_bytes()


def test_ingest_source_never_writes_or_logs_planted_names(
    tmp_path, salt, caplog, capfd
):
    manifest = write_manifest_source(tmp_path / "source", per_class=3, size=96)
    root = manifest.parent
    write_dicom(
        root / "lateral" / "scan0001",
        gradient(96, 96, high=4095),
        bits_stored=12,
        patient_name="Plantedname^Jane",
        patient_id="MRN-PLANTED-4711",
    )
    table = pd.read_csv(manifest, dtype=str)
    table.loc[0, "patient_id"] = "Plantedname^John"
    table.loc[len(table)] = ["lateral/scan0001", "lateral", ""]
    table.to_csv(manifest, index=False)
    out, cache, report = tmp_path / "prepared", tmp_path / "cache", tmp_path / "v.json"
    caplog.set_level(logging.DEBUG)

    _ingest(manifest, out, salt, cache_dir=cache, report_file=report)

    prepared = _read(out, "manifest.csv").set_index("source_path")
    assert prepared.loc["lateral/scan0001", "patient_hash"] == pseudonymise(
        "MRN-PLANTED-4711", salt
    )
    assert prepared.loc["lateral/scan0001", "file_format"] == "DICOM"
    written = [
        p.read_bytes() for p in (out, cache) for p in p.rglob("*") if p.is_file()
    ]
    captured = capfd.readouterr()
    texts = [*written, report.read_bytes(), caplog.text.encode()]
    texts += [captured.out.encode(), captured.err.encode()]
    for planted in (b"plantedname", b"planted-4711", b"john", b"jane"):
        assert not any(planted in text.lower() for text in texts), planted


def test_ingest_source_fails_on_anomaly_and_reports_why(source, tmp_path, salt):
    previous = {"images": 8, "classes": {"frontal": {"share": 0.8}}}
    out, report = tmp_path / "prepared", tmp_path / "metrics" / "validation.json"

    with pytest.raises(DataAnomalyError, match="share of 'frontal' moved"):
        _ingest(
            source, out, salt, thresholds=STRICT, previous=previous, report_file=report
        )

    assert not out.exists()
    assert "50.0%" in pd.read_json(report, typ="series")["anomalies"][0]


def test_ingest_source_reads_real_sample_and_dicom_fixtures(tmp_path, salt):
    source = tmp_path / "source"
    for view, name in [
        ("frontal", "covid-chestxray__000001-19.jpg"),
        ("frontal", "covid-chestxray__16663_1_1.jpg"),
        ("lateral", "covid-chestxray__16663_1_2.jpg"),
        ("lateral", "covid-chestxray__000002-14.jpg"),
    ]:
        (source / view).mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE_DIR / view / name, source / view / name)
    for fixture in (MONOCHROME1_FIXTURE, MONOCHROME2_FIXTURE):
        shutil.copy(fixture, source / "frontal" / fixture.name)
    out = tmp_path / "prepared"

    result = _ingest(source, out, salt)

    assert result.summary["images_per_class"] == {"frontal": 4, "lateral": 2}
    assert result.report["formats"] == {"DICOM": 2, "JPEG": 3, "PNG": 1}
    prepared = _read(out, "manifest.csv").set_index("source_path")
    assert prepared.loc["lateral/covid-chestxray__16663_1_2.jpg", "original_width"] == (
        "2200"
    )


def _stage_repo(tmp_path: Path, source: Path, **validate) -> Path:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["ingest"].update(
        source=str(source), root=str(source), workers=1, min_per_class=2
    )
    params["validate"].update(validate)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def test_main_writes_prepared_data_and_metric(source, tmp_path, monkeypatch):
    monkeypatch.chdir(_stage_repo(tmp_path, source))

    ingest.main()

    assert (tmp_path / "data" / "prepared" / "manifest.csv").exists()
    report = pd.read_json(tmp_path / ingest.VALIDATION_FILE, typ="series")
    assert report["images"] == 8
    assert any((tmp_path / ingest.DECODE_CACHE_DIR).iterdir())


def test_main_exits_with_message_on_anomaly(source, tmp_path, monkeypatch, caplog):
    (source / "frontal" / "frontal-000.png").write_bytes(b"")
    monkeypatch.chdir(_stage_repo(tmp_path, source, max_reject_fraction=0.01))

    with pytest.raises(SystemExit) as stopped:
        ingest.main()

    assert stopped.value.code == 1
    assert "1 of 8 files rejected (12.5%)" in caplog.text
