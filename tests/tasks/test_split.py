"""Tests for tasks.split: stratified, patient-grouped, deterministic subsets."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from tasks.split import assign_subsets, check_split, group_keys


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _manifest(frontal_patients: int = 60, lateral_patients: int = 30) -> pd.DataFrame:
    """Two images per patient; every fifth frontal image has no patient id."""
    rows = []
    for label, patients in (
        ("frontal", frontal_patients),
        ("lateral", lateral_patients),
    ):
        for patient in range(patients):
            for image in range(2):
                key = f"{label}-{patient}-{image}"
                hashed = (
                    ""
                    if label == "frontal" and patient % 5 == 0
                    else f"{label}{patient}"
                )
                rows.append(
                    {"label": label, "sha256": _sha(key), "patient_hash": hashed}
                )
    return pd.DataFrame(rows)


def test_group_keys_join_patient_images_and_separate_unknown_ones():
    manifest = pd.DataFrame(
        {
            "sha256": ["b", "a", "c", "d"],
            "patient_hash": ["p1", "p1", "", ""],
        }
    )

    keys = group_keys(manifest)

    assert keys.tolist() == ["a", "a", "c", "d"]


def test_assign_subsets_keeps_each_patient_in_one_subset():
    split = assign_subsets(_manifest(), 0.15, 0.15, seed=42)

    known = split[split["patient_hash"] != ""]
    assert (known.groupby("patient_hash")["subset"].nunique() == 1).all()
    assert split["sha256"].is_unique


def test_assign_subsets_stratifies_views_and_sizes_subsets():
    split = assign_subsets(_manifest(), 0.15, 0.15, seed=42)

    counts = pd.crosstab(split["subset"], split["label"])
    shares = split.groupby("subset")["label"].apply(lambda s: (s == "lateral").mean())
    assert (counts > 0).all().all()
    assert shares.between(1 / 3 - 0.1, 1 / 3 + 0.1).all()
    sizes = split["subset"].value_counts(normalize=True)
    assert sizes["test"] == pytest.approx(0.15, abs=0.06)
    assert sizes["validation"] == pytest.approx(0.15, abs=0.06)


def test_assign_subsets_is_deterministic_and_ignores_row_order():
    manifest = _manifest()

    first = assign_subsets(manifest, 0.15, 0.15, seed=42)
    shuffled = assign_subsets(manifest.sample(frac=1, random_state=3), 0.15, 0.15, 42)
    other_seed = assign_subsets(manifest, 0.15, 0.15, seed=7)

    pd.testing.assert_frame_equal(first, shuffled)
    assert not first["subset"].equals(other_seed["subset"])


@pytest.mark.parametrize(
    ("validation", "test"), [(0.0, 0.2), (0.2, -0.1), (0.5, 0.5), (0.7, 0.4)]
)
def test_assign_subsets_refuses_bad_fractions(validation, test):
    with pytest.raises(ValueError, match="expected 0 < validation_fraction"):
        assign_subsets(_manifest(), validation, test, seed=42)


def test_assign_subsets_refuses_too_few_patients():
    with pytest.raises(ValueError, match="expected at least 7 patients"):
        assign_subsets(_manifest(3, 2), 0.15, 0.15, seed=42)


def _split(subsets: list[str], patients: list[str], shas: list[str]) -> pd.DataFrame:
    labels = ["frontal", "lateral"] * (len(subsets) // 2)
    return pd.DataFrame(
        {"subset": subsets, "patient_hash": patients, "sha256": shas, "label": labels}
    )


SUBSETS = ["train", "train", "validation", "validation", "test", "test"]


def test_check_split_accepts_clean_split():
    check_split(_split(SUBSETS, list("abcdef"), list("123456")))


@pytest.mark.parametrize(
    ("patients", "shas", "column"),
    [
        (list("abcdea"), list("123456"), "patient_hash"),
        (list("abcdef"), list("123451"), "sha256"),
    ],
)
def test_check_split_refuses_leaks(patients, shas, column):
    with pytest.raises(ValueError, match=f"values of {column} appear in more"):
        check_split(_split(SUBSETS, patients, shas))


def test_check_split_refuses_subset_without_a_view():
    subsets = ["train", "train", "validation", "validation", "test", "train"]

    with pytest.raises(ValueError, match=r"subsets \['test'\] lack a class"):
        check_split(_split(subsets, list("abcdef"), list("123456")))
