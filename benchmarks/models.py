"""Train every candidate configuration on the bundled data and compare them.

Each candidate is the ``train`` section of ``params.yaml`` with a few values
changed. The prepared sample is cut into ``--folds`` parts by patient,
stratified by view (as the split stage cuts it); each part is the test subset
once, a sixth of the rest is validation, and the remainder trains. So every
radiograph, and every one of the 26 laterals, is predicted exactly once by a
model that never saw its patient: with only four laterals in one split's test
subset, a single split says little about lateral recall.

Each candidate trains with ``tasks.train.train_classifier``, is measured with
``tasks.evaluate.evaluate_classifier`` on the fold's test subset and, given
``--shared``, on the 206 shared radiographs outside the sample. The summary
pools the test predictions of all folds; training time and holdout accuracy
are the mean (and worst) over folds.

Run from the repository root after ``dvc repro ingest`` (or ``make run``):

    python benchmarks/models.py --shared ../shared/data [--folds 5]
        [--only mobilenet simple_cnn]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout first

from benchmarks.holdout_accuracy import (  # noqa: E402
    holdout_accuracy,
    holdout_predictions,
)
from benchmarks.tables import markdown_table  # noqa: E402
from tasks.calibration import expected_calibration_error  # noqa: E402
from tasks.config import Params, TrainParams, load_params  # noqa: E402
from tasks.evaluate import evaluate_classifier  # noqa: E402
from tasks.split import group_keys  # noqa: E402
from tasks.train import train_classifier  # noqa: E402

MOBILENET = "data/weights/mobilenet_2_5_224_tf_no_top.h5"
# name -> values that differ from params.yaml's train section
CANDIDATES: dict[str, dict[str, object]] = {
    "simple_cnn": {
        "architecture": "simple_cnn",
        "input_size": 128,
        "weights": "none",
        "learning_rate": 0.001,
        "augment": False,
        "fine_tune_layers": 0,
    },
    "mobilenet": {
        "architecture": "mobilenet",
        "input_size": 224,
        "weights": MOBILENET,
        "learning_rate": 0.01,
        "augment": False,
        "fine_tune_layers": 0,
    },
    "mobilenet_128": {
        "architecture": "mobilenet",
        "input_size": 128,
        "weights": MOBILENET,
        "learning_rate": 0.01,
        "augment": False,
        "fine_tune_layers": 0,
    },
    "mobilenet_augmented": {
        "architecture": "mobilenet",
        "input_size": 224,
        "weights": MOBILENET,
        "learning_rate": 0.01,
        "augment": True,
        "horizontal_flip": True,
        "fine_tune_layers": 0,
    },
    "mobilenet_fine_tuned": {
        "architecture": "mobilenet",
        "input_size": 224,
        "weights": MOBILENET,
        "learning_rate": 0.01,
        "augment": False,
        "fine_tune_layers": 12,
        "fine_tune_epochs": 10,
        "fine_tune_learning_rate": 0.0001,
    },
    "vgg16_no_weights": {
        "architecture": "vgg16",
        "input_size": 128,
        "weights": "none",
        "learning_rate": 0.001,
        "augment": False,
        "fine_tune_layers": 0,
    },
}


def fold_splits(manifest: pd.DataFrame, folds: int, seed: int) -> list[pd.DataFrame]:
    """Return one split per fold: that fold is test, a sixth of the rest validation."""
    labels, groups = manifest["label"].to_numpy(), group_keys(manifest).to_numpy()
    outer = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    splits = []
    for rest, test in outer.split(np.zeros(len(labels)), labels, groups):
        inner = StratifiedGroupKFold(6, shuffle=True, random_state=seed)
        _, validation = next(inner.split(rest, labels[rest], groups[rest]))
        subset = np.full(len(labels), "train", dtype=object)
        subset[test], subset[rest[validation]] = "test", "validation"
        splits.append(manifest.assign(subset=subset))
    return splits


def measure(
    settings: TrainParams,
    params: Params,
    prepared: Path,
    split_file: Path,
    shared: Path | None,
) -> tuple[dict[str, object], pd.DataFrame]:
    """Train and evaluate one candidate on one fold; return a row and predictions."""
    with tempfile.TemporaryDirectory() as scratch:
        model = Path(scratch) / "model.keras"
        started = time.perf_counter()
        _, summary = train_classifier(
            split_file,
            prepared,
            model,
            params.base.classes,
            params.base.image_size,
            settings,
            params.base.seed,
            Path(scratch) / "backup",
        )
        seconds = time.perf_counter() - started
        metrics, predictions, _ = evaluate_classifier(
            split_file,
            prepared,
            model,
            params.evaluate.threshold,
            16,
            Path(scratch) / "reports",
        )
        holdout = (
            holdout_accuracy(holdout_predictions(model, shared)) if shared else None
        )
    row = {
        "accuracy": metrics["accuracy"],
        "lateral_recall": metrics["lateral_recall"],
        "roc_auc": metrics["roc_auc"],
        "ece": metrics["ece"],
        "temperature": metrics["temperature"],
        "train_seconds": round(seconds, 1),
        "epochs": summary["epochs_run"],
        "holdout_accuracy": holdout,
    }
    return row, predictions


def pooled_summary(
    name: str, rows: pd.DataFrame, predictions: pd.DataFrame, positive: str
) -> dict[str, object]:
    """Summarise one candidate: pooled test metrics, mean time and holdout."""
    truth = (predictions["label"] == positive).to_numpy()
    p = predictions["probability_lateral"].to_numpy()
    right = predictions["label"] == predictions["predicted"]
    laterals = predictions[truth]
    holdout = rows["holdout_accuracy"].astype(float)
    return {
        "candidate": name,
        "test accuracy": f"{right.mean():.4f} ({right.sum()}/{len(right)})",
        "lateral recall": f"{(laterals['predicted'] == positive).mean():.4f} "
        f"({(laterals['predicted'] == positive).sum()}/{len(laterals)})",
        "ROC AUC": round(roc_auc_score(truth, p), 4),
        "ECE": round(expected_calibration_error(truth, p), 4),
        "train s (mean / max)": f"{rows['train_seconds'].mean():.1f} / "
        f"{rows['train_seconds'].max():.1f}",
        "holdout accuracy (mean / min)": "n/a"
        if holdout.isna().all()
        else f"{holdout.mean():.4f} / {holdout.min():.4f}",
    }


def main() -> None:
    """Train every candidate on every fold and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=None)
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=list(CANDIDATES), default=None)
    args = parser.parse_args()
    params = load_params()
    manifest = pd.read_csv(args.prepared / "manifest.csv", dtype={"patient_hash": str})
    names = args.only or list(CANDIDATES)
    rows, predictions = {n: [] for n in names}, {n: [] for n in names}
    with tempfile.TemporaryDirectory() as scratch:
        for fold, split in enumerate(
            fold_splits(manifest, args.folds, params.base.seed)
        ):
            split_file = Path(scratch) / f"split-{fold}.csv"
            split.to_csv(split_file, index=False)
            for name in names:
                settings = dataclasses.replace(params.train, **CANDIDATES[name])
                row, predicted = measure(
                    settings, params, args.prepared, split_file, args.shared
                )
                rows[name].append({"candidate": name, "fold": fold, **row})
                predictions[name].append(predicted)
                print(rows[name][-1], flush=True)
    print(f"\n{len(manifest)} radiographs, {args.folds} folds, {os.cpu_count()} CPUs")
    print("\nEvery fold:")
    print(markdown_table(pd.DataFrame([r for n in names for r in rows[n]])))
    print(f"\nAll {args.folds} folds' test predictions pooled:")
    summary = [
        pooled_summary(
            n, pd.DataFrame(rows[n]), pd.concat(predictions[n]), params.base.classes[1]
        )
        for n in names
    ]
    print(markdown_table(pd.DataFrame(summary)))


if __name__ == "__main__":
    main()
