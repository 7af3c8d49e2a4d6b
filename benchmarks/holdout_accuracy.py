"""Accuracy of a trained model on the shared radiographs left out of the sample.

``data/sample/holdout.csv`` lists every radiograph in the shared data folder
that is not in ``data/sample`` (206, all frontal: the sample already holds
every lateral the sources have), with paths relative to that folder. Each one
goes through ``tasks.predict.predict_files``, exactly as ``laterality
predict`` does.

    python benchmarks/holdout_accuracy.py --shared ../shared/data \\
        --model models/model.keras
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout first

from tasks.predict import predict_files  # noqa: E402

HOLDOUT = Path("data/sample/holdout.csv")


def holdout_predictions(
    model: Path, shared: Path, holdout: Path = HOLDOUT
) -> pd.DataFrame:
    """Predict every holdout file; one row per file with its truth and outcome.

    Raises:
        FileNotFoundError: ``shared`` is not the shared data folder.
    """
    table = pd.read_csv(holdout)
    files = [shared / path for path in table["path"]]
    if not files[0].is_file():
        raise FileNotFoundError(f"--shared: expected {files[0]} to exist")
    predictions, failures = predict_files(model, files)
    found = {p.path: (p.label, p.probability) for p in predictions}
    reasons = {f.path: f.reason for f in failures}
    rows = [
        {
            "path": str(relative),
            "source": source,
            "label": label,
            "predicted": found.get(str(file), (None, None))[0],
            "probability": found.get(str(file), (None, None))[1],
            "failure": reasons.get(str(file)),
        }
        for relative, source, label, file in zip(
            table["path"], table["source"], table["label"], files, strict=True
        )
    ]
    return pd.DataFrame(rows)


def holdout_accuracy(outcome: pd.DataFrame) -> float:
    """Return the share of holdout files predicted right; a failure counts wrong."""
    return float((outcome["predicted"] == outcome["label"]).mean())


def main() -> None:
    """Print the accuracy overall and per source, and every mistake."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=Path("models/model.keras"))
    parser.add_argument("--holdout", type=Path, default=HOLDOUT)
    args = parser.parse_args()
    outcome = holdout_predictions(args.model, args.shared, args.holdout)
    right = outcome["predicted"] == outcome["label"]
    print(
        f"holdout accuracy: {right.mean():.4f} ({right.sum()}/{len(outcome)}), "
        f"{outcome['failure'].notna().sum()} unreadable"
    )
    print("| source | images | accuracy |")
    print("|---|---:|---:|")
    for source, rows in outcome.assign(right=right).groupby("source"):
        print(f"| {source} | {len(rows)} | {rows['right'].mean():.4f} |")
    for row in outcome[~right].itertuples():
        print(
            f"wrong: {row.path} true {row.label}, predicted {row.predicted} "
            f"({row.probability}) {row.failure or ''}"
        )


if __name__ == "__main__":
    main()
