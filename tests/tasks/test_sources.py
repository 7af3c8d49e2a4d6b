"""Tests for tasks.sources: what a source lists, and what it is refused for."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.sources import check_class_counts, list_source
from tests.synthetic import CLASSES, write_class_folders, write_manifest_source


def _manifest(root: Path, rows: list[str], name: str = "manifest.csv") -> Path:
    path = root / name
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def folder_source(tmp_path) -> Path:
    return write_class_folders(tmp_path / "source", per_class=3, size=64)


def test_list_source_lists_class_folders_with_labels(folder_source):
    (folder_source / "frontal" / ".DS_Store").write_text("hidden")
    (folder_source / "lateral" / "2024").mkdir()
    (folder_source / "lateral" / "lateral-002.png").rename(
        folder_source / "lateral" / "2024" / "scan.png"
    )

    entries = list_source(folder_source, folder_source, CLASSES)

    assert len(entries) == 6
    assert entries[0].source_path == "frontal/frontal-000.png"
    assert entries[3].source_path == "lateral/2024/scan.png"
    assert [e.label for e in entries] == ["frontal"] * 3 + ["lateral"] * 3
    assert all(e.patient_id == "" for e in entries)


def test_list_source_reads_manifest_with_patient_ids(tmp_path):
    manifest = write_manifest_source(tmp_path / "source", per_class=4, size=64)

    entries = list_source(manifest, manifest.parent, CLASSES)

    assert len(entries) == 8
    assert entries[0].path == (manifest.parent / "frontal/frontal-000.png")
    assert entries[1].patient_id == "frontal-patient-0"


def test_list_source_reads_tsv_manifest(folder_source):
    manifest = _manifest(
        folder_source,
        [
            "path\tlabel",
            "frontal/frontal-000.png\tfrontal",
            "lateral/lateral-000.png\tlateral",
        ],
        "manifest.tsv",
    )

    entries = list_source(manifest, folder_source, CLASSES)

    assert [e.label for e in entries] == ["frontal", "lateral"]


def test_list_source_refuses_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_source(tmp_path / "nowhere", tmp_path, CLASSES)


def test_list_source_refuses_source_outside_root(tmp_path, folder_source):
    with pytest.raises(ValueError, match="to lie inside"):
        list_source(folder_source, tmp_path / "elsewhere", CLASSES)


def test_list_source_refuses_unknown_class_folder(folder_source):
    (folder_source / "oblique").mkdir()

    with pytest.raises(ValueError, match=r"found \['oblique'\]"):
        list_source(folder_source, folder_source, CLASSES)


def test_list_source_refuses_single_class(tmp_path):
    source = tmp_path / "source"
    write_class_folders(source, per_class=2, size=64)
    for path in (source / "lateral").iterdir():
        path.unlink()

    with pytest.raises(ValueError, match=r"\['lateral'\] fall short"):
        list_source(source, source, CLASSES)


def test_list_source_refuses_class_below_minimum(folder_source):
    with pytest.raises(ValueError, match="at least 4 images"):
        list_source(folder_source, folder_source, CLASSES, min_per_class=4)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["file,view", "a.png,frontal"], r"missing \['path', 'label'\]"),
        (["path,view", "a.png,frontal"], r"missing \['label'\]"),
        (["path,label", "frontal/frontal-000.png,oblique"], r"got \['oblique'\]"),
        (["path,label", ",frontal"], "expected a path on every row"),
        (["path,label", "../outside.png,frontal"], "resolve inside the source root"),
        (["path,label", "/etc/hostname,frontal"], "resolve inside the source root"),
    ],
)
def test_list_source_refuses_bad_manifest(folder_source, rows, message):
    manifest = _manifest(folder_source, rows)

    with pytest.raises(ValueError, match=message):
        list_source(manifest, folder_source, CLASSES)


def test_list_source_refuses_manifest_symlink_leaving_root(tmp_path, folder_source):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"outside")
    (folder_source / "frontal" / "link.png").symlink_to(secret)
    manifest = _manifest(folder_source, ["path,label", "frontal/link.png,frontal"])

    with pytest.raises(ValueError, match="row 2: 'frontal/link.png'"):
        list_source(manifest, folder_source, CLASSES)


def test_list_source_refuses_folder_symlink_leaving_root(tmp_path, folder_source):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"outside")
    (folder_source / "lateral" / "link.png").symlink_to(secret)

    with pytest.raises(ValueError, match="1 symlinks lead elsewhere"):
        list_source(folder_source, folder_source, CLASSES)


def test_list_source_accepts_symlink_inside_root(folder_source):
    target = folder_source / "frontal" / "frontal-000.png"
    (folder_source / "frontal" / "alias.png").symlink_to(target)

    entries = list_source(folder_source, folder_source, CLASSES)

    assert len(entries) == 7


def test_check_class_counts_names_counts():
    with pytest.raises(ValueError, match=r"counts \{'frontal': 2, 'lateral': 1\}"):
        check_class_counts(Path("src"), ["frontal", "frontal", "lateral"], CLASSES, 2)
