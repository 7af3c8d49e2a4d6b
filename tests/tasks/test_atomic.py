"""Tests for tasks.atomic: outputs appear whole or not at all."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tasks import atomic


def test_atomic_path_moves_file_into_place_on_success(tmp_path):
    target = tmp_path / "deep" / "report.txt"

    with atomic.atomic_path(target) as temporary:
        assert temporary.parent == target.parent
        temporary.write_text("done")

    assert target.read_text() == "done"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.txt"]


def _crash_writing_file(target):
    with atomic.atomic_path(target, ".keras") as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed mid-way")


def _crash_writing_folder(target):
    with atomic.atomic_directory(target) as staging:
        (staging / "manifest.csv").write_text("new")
        raise ValueError("refused")


def test_atomic_path_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")

    with pytest.raises(RuntimeError, match="killed"):
        _crash_writing_file(target)

    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


def test_write_json_sorts_keys_and_ends_with_newline(tmp_path):
    target = tmp_path / "metrics.json"

    atomic.write_json(target, {"b": 1, "a": [1, 2]})

    text = target.read_text()
    assert text.endswith("}\n")
    assert list(json.loads(text)) == ["a", "b"]
    assert text.index('"a"') < text.index('"b"')


def test_write_csv_writes_no_index(tmp_path):
    target = tmp_path / "manifest.csv"

    atomic.write_csv(target, pd.DataFrame({"image": ["x.png"], "label": ["lateral"]}))

    assert target.read_text() == "image,label\nx.png,lateral\n"


def test_atomic_directory_replaces_folder_on_success(tmp_path):
    target = tmp_path / "prepared"
    (target / "images").mkdir(parents=True)
    (target / "stale.csv").write_text("old")

    with atomic.atomic_directory(target) as staging:
        assert not any(staging.iterdir())
        (staging / "manifest.csv").write_text("new")

    assert sorted(p.name for p in target.iterdir()) == ["manifest.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


def test_atomic_directory_keeps_old_folder_and_cleans_up_on_failure(tmp_path):
    target = tmp_path / "prepared"
    target.mkdir()
    (target / "manifest.csv").write_text("old")

    with pytest.raises(ValueError, match="refused"):
        _crash_writing_folder(target)

    assert (target / "manifest.csv").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


def test_atomic_directory_creates_folder_that_did_not_exist(tmp_path):
    target = tmp_path / "new" / "prepared"

    with atomic.atomic_directory(target) as staging:
        (staging / "summary.json").write_text("{}")

    assert (target / "summary.json").read_text() == "{}"
