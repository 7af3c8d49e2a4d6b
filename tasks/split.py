"""Stage ``split``: assign each prepared radiograph to train, validation or test.

Stratified by view and grouped by patient with scikit-learn's
``StratifiedGroupKFold``: all images of one patient land in one subset, so the
test set measures the model on people it never saw. A group is keyed by the
smallest content hash among its images rather than by the salted patient
pseudonym, so the split does not change when the salt does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from tasks import atomic
from tasks.config import load_params
from tasks.ingest import PREPARED_DIR

log = logging.getLogger(__name__)

SPLIT_FILE = Path("data/split/split.csv")
FROZEN_TEST_FILE = Path("data/frozen_test.csv")
SUBSETS = ("train", "validation", "test")


def group_keys(manifest: pd.DataFrame) -> pd.Series:
    """Return one key per row shared by every image of the same patient.

    Images without a patient id form a group of their own.
    """
    patient = manifest["patient_hash"].fillna("").astype(str)
    owner = patient.where(patient != "", "image:" + manifest["sha256"])
    return manifest.groupby(owner)["sha256"].transform("min")


def _holdout_mask(
    labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int
) -> np.ndarray:
    """Mark about ``fraction`` of the groups, stratified by label, as held out."""
    folds = max(2, round(1 / fraction))
    if len(np.unique(groups)) < folds:
        raise ValueError(
            f"split: expected at least {folds} patients to hold out {fraction:.0%}, "
            f"got {len(np.unique(groups))}"
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    _, held_out = next(splitter.split(np.zeros(len(labels)), labels, groups))
    mask = np.zeros(len(labels), dtype=bool)
    mask[held_out] = True
    return mask


def assign_subsets(
    manifest: pd.DataFrame,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    frozen_test: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """Return ``manifest`` with a ``subset`` column of train/validation/test.

    Args:
        frozen_test: sha256 of images that earlier registered versions were
            tested on. Each stays in test, with every image of its patient, so
            a new challenger can be compared with the champion on them.

    Raises:
        ValueError: fractions outside (0, 1), or a subset left without a class.
    """
    if not (validation_fraction > 0 and test_fraction > 0) or (
        validation_fraction + test_fraction >= 1
    ):
        raise ValueError(
            "split: expected 0 < validation_fraction, test_fraction and a sum "
            f"below 1, got {validation_fraction} and {test_fraction}"
        )
    manifest = manifest.sort_values("sha256").reset_index(drop=True)
    labels = manifest["label"].to_numpy()
    groups = group_keys(manifest).to_numpy()
    subset = np.full(len(manifest), "train", dtype=object)
    test = _holdout_mask(labels, groups, test_fraction, seed)
    subset[test] = "test"
    rest = np.flatnonzero(~test)
    share = validation_fraction / (1 - test_fraction)
    validation = _holdout_mask(labels[rest], groups[rest], share, seed + 1)
    subset[rest[validation]] = "validation"
    frozen_groups = set(groups[manifest["sha256"].isin(frozen_test).to_numpy()])
    subset[np.isin(groups, list(frozen_groups))] = "test"
    split = manifest.assign(subset=subset)
    check_split(split)
    return split


def check_split(split: pd.DataFrame) -> None:
    """Refuse a split that leaks a patient or an image, or lacks a class."""
    for column in ("sha256", "patient_hash"):
        keyed = split[split[column].fillna("") != ""]
        spread = keyed.groupby(column)["subset"].nunique()
        if (spread > 1).any():
            raise ValueError(
                f"split: {int((spread > 1).sum())} values of {column} "
                "appear in more than one subset"
            )
    counts = pd.crosstab(split["subset"], split["label"])
    missing = [
        s for s in SUBSETS if s not in counts.index or (counts.loc[s] == 0).any()
    ]
    if missing:
        raise ValueError(
            f"split: subsets {missing} lack a class; counts per subset:\n{counts}"
        )


def main() -> None:
    """Run the stage with the settings in ``params.yaml``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    params = load_params()
    manifest = pd.read_csv(PREPARED_DIR / "manifest.csv", dtype={"patient_hash": str})
    frozen = (
        pd.read_csv(FROZEN_TEST_FILE)["sha256"] if FROZEN_TEST_FILE.exists() else []
    )
    split = assign_subsets(
        manifest,
        params.split.validation_fraction,
        params.split.test_fraction,
        params.base.seed,
        frozenset(frozen),
    )
    atomic.write_csv(SPLIT_FILE, split)
    counts = pd.crosstab(split["subset"], split["label"])
    log.info("split: images per subset and view\n%s", counts.to_string())


if __name__ == "__main__":
    main()
