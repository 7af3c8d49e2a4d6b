"""Content comparison of the source with the newest registered dataset.

The last test registers a dataset in a repository copy whose DVC remote is an
S3 bucket on a moto server on loopback, empties the local cache and reads the
registered manifest back through the remote.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from tasks.config import load_params
from tasks.pipeline import push_outputs
from tasks.source_changes import (
    SourceChanges,
    compare_listings,
    listing_at,
    listing_from_source,
    listing_from_tables,
    newest_registered,
)
from tasks.sources import SourceEntry, list_source
from tests.flows.repo_copy import MODEL, commit_all, new_pipeline_repo, run

A, B, C = "a" * 64, "b" * 64, "c" * 64


@pytest.mark.parametrize(
    ("current", "previous", "added", "removed", "relabelled"),
    [
        ({(A, "frontal"), (B, "lateral")}, {(A, "frontal"), (B, "lateral")}, 0, 0, 0),
        ({(A, "frontal"), (C, "frontal")}, {(A, "frontal")}, 1, 0, 0),
        ({(A, "frontal")}, {(A, "frontal"), (B, "lateral")}, 0, 1, 0),
        ({(A, "lateral")}, {(A, "frontal")}, 1, 1, 1),
        ({(A, "frontal"), (B, "lateral")}, set(), 2, 0, 0),
    ],
    ids=["unchanged", "added", "removed", "relabelled", "first-version"],
)
def test_compare_listings_counts_changes_by_content_and_view(
    current, previous, added, removed, relabelled
):
    changes = compare_listings(frozenset(current), frozenset(previous), "v0.0.1")
    assert sum(changes.added.values()) == added
    assert sum(changes.removed.values()) == removed
    assert changes.relabelled == relabelled
    assert changes.found == bool(added or removed)
    assert changes.source_images == len(current)


def test_compare_listings_counts_per_view():
    changes = compare_listings(
        frozenset({(A, "frontal"), (B, "frontal")}),
        frozenset({(C, "lateral")}),
        "v0.0.3",
    )
    assert changes.added == {"frontal": 2, "lateral": 0}
    assert changes.removed == {"frontal": 0, "lateral": 1}
    assert changes.describe() == "since v0.0.3: 2 frontal added, 1 lateral removed"


def test_source_changes_describe_without_changes_says_no_new_data():
    changes = SourceChanges("v0.0.2", {"frontal": 0}, {"frontal": 0}, 0, 12)
    assert changes.describe() == "no new data since v0.0.2 (12 source images)"


def entry(path: Path, label: str = "frontal") -> SourceEntry:
    return SourceEntry(path, path.name, label, "")


def test_listing_from_source_keys_files_by_content_not_name(tmp_path: Path):
    (tmp_path / "one.png").write_bytes(b"radiograph")
    (tmp_path / "copy.png").write_bytes(b"radiograph")
    (tmp_path / "renamed.png").write_bytes(b"radiograph")
    both = listing_from_source(
        [entry(tmp_path / "one.png"), entry(tmp_path / "copy.png")]
    )
    renamed = listing_from_source([entry(tmp_path / "renamed.png")])
    assert both == renamed
    assert len(both) == 1


def test_listing_from_source_matches_ingest_row_of_an_unreadable_file(tmp_path: Path):
    missing = listing_from_source([entry(tmp_path / "gone.png", "lateral")])
    rejected = pd.DataFrame(
        {"source_path": ["gone.png"], "label": ["lateral"], "sha256": [""]}
    )
    assert missing == listing_from_tables([rejected])


def test_listing_from_tables_joins_manifest_and_rejected_rows():
    manifest = pd.DataFrame(
        {"source_path": ["f/1.png"], "label": ["frontal"], "sha256": [A]}
    )
    rejected = pd.DataFrame(
        {"source_path": ["l/tiny.png"], "label": ["lateral"], "sha256": [B]}
    )
    assert listing_from_tables([manifest, rejected]) == {
        (A, "frontal"),
        (B, "lateral"),
    }


def git_repository(folder: Path) -> Path:
    run(folder, "git", "init", "--quiet", "--initial-branch", "main")
    (folder / "dvc.yaml").write_text(f"artifacts:\n  {MODEL}:\n    path: m.keras\n")
    return folder


def test_newest_registered_without_versions_is_none(tmp_path: Path):
    repo = git_repository(tmp_path)
    commit_all(repo, "init")
    assert newest_registered(repo, MODEL) is None


def test_newest_registered_orders_versions_as_numbers(tmp_path: Path):
    repo = git_repository(tmp_path)
    commits = {}
    for version in ("v0.0.9", "v0.0.10", "v0.0.2"):
        commit_all(repo, version)
        run(repo, "gto", "register", MODEL, "HEAD", "--version", version)
        commits[version] = run(repo, "git", "rev-parse", "HEAD").stdout.strip()
    newest = newest_registered(repo, MODEL)
    assert newest is not None
    assert (newest.version, newest.commit) == ("v0.0.10", commits["v0.0.10"])


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch):
    """An S3 bucket on a moto server on loopback; yields its endpoint URL."""
    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    server = server_module.ThreadedMotoServer(
        ip_address="127.0.0.1", port=0, verbose=False
    )
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="radiographs")
    yield endpoint
    server.stop()


@pytest.mark.slow
def test_listing_at_reads_registered_data_back_from_an_s3_remote(
    tmp_path: Path, s3_bucket: str
):
    pytest.importorskip("dvc_s3")
    import boto3

    repo = new_pipeline_repo(tmp_path)
    run(repo, "dvc", "remote", "add", "--default", "s3", "s3://radiographs/dvc")
    run(repo, "dvc", "remote", "modify", "s3", "endpointurl", s3_bucket)
    run(repo, "dvc", "repro", "--single-item", "ingest")
    commit_all(repo, "ingest into an S3-backed repository")
    run(repo, "gto", "register", MODEL, "HEAD", "--version", "v0.0.1")
    push_outputs(repo, lambda line: None)
    stored = boto3.client("s3", endpoint_url=s3_bucket).list_objects_v2(
        Bucket="radiographs", Prefix="dvc/"
    )
    assert stored["KeyCount"] > 60
    shutil.rmtree(repo / ".dvc" / "cache")

    registered = newest_registered(repo, MODEL)
    assert registered is not None
    previous = listing_at(repo, registered.commit)
    settings = load_params(repo / "params.yaml").ingest
    entries = list_source(
        repo / settings.source, repo / settings.root, ("frontal", "lateral")
    )
    changes = compare_listings(listing_from_source(entries), previous, "v0.0.1")
    assert len(previous) == 60
    assert not changes.found
