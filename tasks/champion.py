"""Score the champion and the challenger on the same frozen test images.

The frozen set is the champion's own test subset, read from the
``metrics/test_predictions.csv`` committed with its version. The split keeps
those images in test (``data/frozen_test.csv``), so neither model trained on
them and the comparison is fair. Both models see the images through
``tasks.predict``, their production inference path.

Known shortcoming: when the champion was built for another image size, its
inputs are resized from the current prepared images rather than decoded afresh
from the source files, which can move its scores by a hair.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.evaluate import summarise_predictions
from tasks.predict import predict_files
from tasks.registry import fetch_version, read_at, registered_versions

log = logging.getLogger(__name__)


def test_images_of(repo: Path, name: str, version: str) -> set[str]:
    """Return the sha256 of every test image of a registered version."""
    commit = next(
        v.commit for v in registered_versions(repo, name) if v.version == version
    )
    table = pd.read_csv(
        io.StringIO(read_at(repo, commit, "metrics/test_predictions.csv"))
    )
    return {Path(image).stem for image in table["image"]}


def frozen_test_images(repo: Path, name: str) -> pd.DataFrame:
    """Collect the test images of every registered version, oldest first."""
    rows = []
    for info in reversed(registered_versions(repo, name)):
        for sha in sorted(test_images_of(repo, name, info.version)):
            rows.append({"sha256": sha, "version": info.version})
    table = pd.DataFrame(rows, columns=["sha256", "version"])
    return table.drop_duplicates("sha256", keep="first").reset_index(drop=True)


def score_model(
    model_path: Path,
    paths: list[Path],
    labels: list[str],
    classes: tuple[str, ...],
    threshold: float,
) -> dict[str, object]:
    """Predict ``paths`` with one model and summarise against ``labels``."""
    predictions, failures = predict_files(model_path, paths)
    if failures:
        first = failures[0]
        raise ValueError(f"champion: could not read {first.path}: {first.reason}")
    positive = classes[1]
    p_positive = np.array(
        [
            p.probability if p.label == positive else 1 - p.probability
            for p in predictions
        ]
    )
    truth = np.array([float(label == positive) for label in labels])
    return summarise_predictions(truth, p_positive, classes, threshold)


def compare_on_frozen_set(
    repo: Path,
    name: str,
    champion_version: str,
    challenger_model: Path,
    split_file: Path,
    prepared_dir: Path,
    classes: tuple[str, ...],
    threshold: float,
) -> dict[str, dict[str, object]]:
    """Score both models on the champion's test images still in the test subset.

    Returns:
        ``{"challenger": ..., "champion": ...}`` metrics, or ``{}`` when none
        of the champion's test images remain.
    """
    frozen = test_images_of(repo, name, champion_version)
    split = pd.read_csv(split_file, dtype={"patient_hash": str})
    shared = split[(split["subset"] == "test") & split["sha256"].isin(frozen)]
    if shared.empty:
        log.warning("champion: none of %s's test images remain", champion_version)
        return {}
    paths = [prepared_dir / image for image in shared["image"]]
    labels = shared["label"].tolist()
    champion_model = fetch_version(repo, name, champion_version)
    log.info("champion: comparing on %d frozen test images", len(paths))
    return {
        "challenger": score_model(challenger_model, paths, labels, classes, threshold),
        "champion": score_model(champion_model, paths, labels, classes, threshold),
    }
