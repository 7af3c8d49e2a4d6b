"""Tests for tasks.decode_cache: each distinct content is decoded once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.decode_cache import (
    DecodeJob,
    cached_image,
    decode_entry,
    load_record,
    prune_cache,
    settings_key,
)
from tasks.radiograph import DecodeLimits
from tests.tasks.radiograph_files import gradient, save, write_dicom


def _job(path: Path, tmp_path: Path, salt: bytes) -> DecodeJob:
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    return DecodeJob(
        path, path.name, tmp_path / "cache", images, 64, DecodeLimits(), salt
    )


def test_settings_key_changes_with_every_setting(salt):
    base = settings_key(64, DecodeLimits(), salt)

    assert base == settings_key(64, DecodeLimits(), salt)
    assert base != settings_key(128, DecodeLimits(), salt)
    assert base != settings_key(64, DecodeLimits(min_side=32), salt)
    assert base != settings_key(64, DecodeLimits(max_pixels=10), salt)
    assert base != settings_key(64, DecodeLimits(), b"1" * 64)


def test_decode_entry_decodes_once_then_answers_from_cache(tmp_path, salt):
    path = save(gradient(96, 96), tmp_path / "scan.png")
    job = _job(path, tmp_path, salt)

    first = decode_entry(job)
    second = decode_entry(job)

    assert first["decoded"] is True
    assert second["decoded"] is False
    assert {**first, "decoded": None} == {**second, "decoded": None}
    copied = tmp_path / "images" / f"{first['sha256']}.png"
    assert np.asarray(Image.open(copied)).shape == (64, 64)
    assert first["original_width"] == 96


def test_decode_entry_remembers_rejects(tmp_path, salt):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    job = _job(path, tmp_path, salt)

    first = decode_entry(job)
    second = decode_entry(job)

    assert (first["status"], first["reason"]) == ("rejected", "empty-file")
    assert second["decoded"] is False
    assert second["reason"] == "empty-file"
    assert not any((tmp_path / "images").iterdir())


def test_decode_entry_reports_missing_file(tmp_path, salt):
    record = decode_entry(_job(tmp_path / "gone.png", tmp_path, salt))

    assert record["reason"] == "missing-file"
    assert record["sha256"] == ""


def test_decode_entry_decodes_again_when_cached_png_is_gone(tmp_path, salt):
    path = save(gradient(96, 96), tmp_path / "scan.png")
    job = _job(path, tmp_path, salt)
    sha256 = decode_entry(job)["sha256"]
    cached_image(job.cache_folder, sha256).unlink()

    assert load_record(job.cache_folder, sha256) is None
    assert decode_entry(job)["decoded"] is True


def test_decode_entry_stores_only_hash_of_dicom_patient(tmp_path, salt):
    path = write_dicom(
        tmp_path / "scan.dcm",
        gradient(64, 64, high=4095),
        patient_name="Planted^Person",
        patient_id="MRN-PLANTED-4711",
    )

    record = decode_entry(_job(path, tmp_path, salt))

    assert len(record["dicom_patient_hash"]) == 16
    stored = json.dumps(record) + "".join(
        p.read_text() for p in (tmp_path / "cache").rglob("*.json")
    )
    assert "PLANTED" not in stored.upper()


@pytest.mark.parametrize("unused", [True, False])
def test_prune_cache_removes_other_settings_and_unused_entries(tmp_path, unused):
    root = tmp_path / "cache"
    for key, sha in [("old", "ab12"), ("new", "cd34"), ("new", "ef56")]:
        folder = root / key / sha[:2]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{sha}.json").write_text("{}")
    used = {"cd34"} if unused else {"cd34", "ef56"}

    removed = prune_cache(root, "new", used)

    assert removed == (2 if unused else 1)
    assert not (root / "old").exists()
    assert (root / "new" / "cd" / "cd34.json").exists()
    assert (root / "new" / "ef" / "ef56.json").exists() is not unused
