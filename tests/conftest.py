"""Shared test settings: quiet TensorFlow, an offline Prefect, repo paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("DO_NOT_TRACK", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO_ROOT / "data" / "sample"


@pytest.fixture
def salt() -> bytes:
    """A fixed salt, so pseudonyms in a test are reproducible."""
    return b"0" * 64


@pytest.fixture(autouse=True)
def isolated_salt_file(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """Keep every test away from the developer's real project salt."""
    folder = tmp_path_factory.mktemp("salt")
    monkeypatch.setenv("LATERALITY_SALT_FILE", str(folder / "salt"))
