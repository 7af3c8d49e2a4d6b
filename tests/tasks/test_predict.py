"""Prediction on files: training's exact preprocessing, failures, CSV output."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flows.cli import main as laterality
from tasks.dataset import make_dataset
from tasks.model import load_classifier
from tasks.predict import collect_files, label_probabilities, predict_files
from tasks.radiograph import prepare_radiograph
from tests.conftest import REPO_ROOT, SAMPLE_DIR
from tests.tasks.tiny_models import (
    IMAGE_SIZE,
    tiny_settings,
    train_tiny_classifier,
    write_prepared_split,
)

CLASSES = ("frontal", "lateral")
REAL_RADIOGRAPHS = [
    SAMPLE_DIR / "frontal" / "covid-chestxray__000001-12.jpg",
    SAMPLE_DIR / "frontal" / "covid-chestxray__000001-17.jpg",
    SAMPLE_DIR / "lateral" / "covid-chestxray__000002-14.jpg",
    SAMPLE_DIR / "lateral" / "covid-chestxray__000002-16.jpg",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small CNN trained on generated views; its prepared folder and model."""
    root = tmp_path_factory.mktemp("predict")
    prepared, _ = write_prepared_split(root)
    model_file, _, _ = train_tiny_classifier(root, tiny_settings(epochs=6), 5)
    return prepared, model_file


def test_collect_files_expands_folders_and_skips_hidden_files(tmp_path: Path):
    (tmp_path / "a" / ".cache").mkdir(parents=True)
    for name in ("a/2.png", "a/1.png", "a/.hidden.png", "a/.cache/3.png", "b.png"):
        (tmp_path / name).write_bytes(b"")
    found = collect_files([tmp_path / "a", tmp_path / "b.png"])
    assert found == [tmp_path / "a/1.png", tmp_path / "a/2.png", tmp_path / "b.png"]


@pytest.mark.parametrize(
    ("p_lateral", "expected"),
    [
        (0.9, ("lateral", 0.9)),
        (0.5, ("lateral", 0.5)),
        (0.2, ("frontal", 0.8)),
        (0.0, ("frontal", 1.0)),
    ],
)
def test_label_probabilities_gives_the_probability_of_the_label(p_lateral, expected):
    [(label, probability)] = label_probabilities(np.array([p_lateral]), CLASSES)
    assert label == expected[0]
    assert probability == pytest.approx(expected[1])


@pytest.mark.slow
def test_predict_files_classifies_generated_views(trained):
    prepared, model_file = trained
    files = sorted((prepared / "images").iterdir())
    predictions, failures = predict_files(model_file, files)
    right = [p.label == Path(p.path).name.split("-")[0] for p in predictions]
    assert failures == []
    assert np.mean(right) >= 0.9
    assert all(0.5 <= p.probability <= 1 for p in predictions)


@pytest.mark.slow
def test_predict_files_applies_exactly_the_training_preprocessing(trained, tmp_path):
    _, model_file = trained
    prepared_pngs = []
    for source in REAL_RADIOGRAPHS:  # what ingest writes for each file
        png = tmp_path / f"{source.stem}.png"
        Image.fromarray(prepare_radiograph(source, IMAGE_SIZE).pixels).save(png)
        prepared_pngs.append(str(png))
    classifier = load_classifier(model_file)
    dataset = make_dataset(prepared_pngs, np.zeros(len(prepared_pngs)), 32)
    as_in_evaluation = classifier.predict_positive(dataset)

    predictions, failures = predict_files(model_file, REAL_RADIOGRAPHS)

    p_lateral = [
        p.probability if p.label == "lateral" else 1 - p.probability
        for p in predictions
    ]
    assert failures == []
    np.testing.assert_allclose(p_lateral, as_in_evaluation, atol=1e-5)


@pytest.mark.slow
def test_predict_files_reports_unreadable_files_and_goes_on(trained, tmp_path):
    _, model_file = trained
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an image")
    files = [
        tmp_path / "empty.png",
        REAL_RADIOGRAPHS[0],
        tmp_path / "notes.txt",
        tmp_path / "missing.png",
    ]

    predictions, failures = predict_files(model_file, files)

    assert [p.path for p in predictions] == [str(REAL_RADIOGRAPHS[0])]
    reasons = {Path(f.path).name: f.reason for f in failures}
    assert reasons["empty.png"].startswith("empty-file: ")  # the path is not repeated
    assert reasons["notes.txt"].startswith("not-an-image: ")
    assert "missing.png" in reasons


def predict_cli(inputs: list[Path], model_file: Path) -> int:
    """Run ``laterality predict INPUTS --model MODEL_FILE`` in this process."""
    arguments = ["predict", *map(str, inputs), "--model", str(model_file)]
    return laterality(["--repo", str(REPO_ROOT), *arguments])


@pytest.mark.slow
def test_laterality_predict_writes_path_label_probability_csv(trained, capsys):
    _, model_file = trained
    code = predict_cli([*REAL_RADIOGRAPHS[:2], SAMPLE_DIR / "metadata.csv"], model_file)
    out, err = capsys.readouterr()
    rows = list(csv.reader(io.StringIO(out)))
    assert code == 0
    assert rows[0] == ["path", "label", "probability"]
    assert [row[0] for row in rows[1:]] == [str(p) for p in REAL_RADIOGRAPHS[:2]]
    assert all(row[1] in CLASSES and 0.5 <= float(row[2]) <= 1 for row in rows[1:])
    assert "metadata.csv" in err


@pytest.mark.slow
def test_laterality_predict_fails_when_nothing_was_predicted(trained, capsys):
    _, model_file = trained
    code = predict_cli([SAMPLE_DIR / "metadata.csv"], model_file)
    assert code != 0
    assert capsys.readouterr().out.splitlines() == ["path,label,probability"]
