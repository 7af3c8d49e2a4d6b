"""Model cards and lineage queries: what made a version, and what it touched.

A model card (``models/model_card.json`` and ``.md``) is committed with each
registered version. Lineage queries read each version's split from the DVC
cache at that version's commit, so they answer from the data the model really
saw, not from today's workspace.
"""

from __future__ import annotations

import io
import json
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd
import yaml

from tasks import atomic
from tasks.digests import file_md5
from tasks.paths import MODEL_FILE, class_index_path
from tasks.registry import locked_hashes, read_at, registered_versions

CARD_JSON = Path("models/model_card.json")
CARD_MARKDOWN = Path("models/model_card.md")
LIBRARIES = (
    "tensorflow-cpu",
    "keras",
    "numpy",
    "pandas",
    "pillow",
    "pydicom",
    "scikit-learn",
    "dvc",
    "gto",
    "prefect",
)


def library_versions() -> dict[str, str]:
    """Return the installed versions of the libraries that shape a model."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def images_per_subset(split_file: Path) -> dict[str, dict[str, int]]:
    """Count images per subset and view in a split file."""
    split = pd.read_csv(split_file, dtype={"patient_hash": str})
    table = pd.crosstab(split["subset"], split["label"])
    return {
        subset: {k: int(v) for k, v in row.items()} for subset, row in table.iterrows()
    }


def build_model_card(
    repo: Path,
    name: str,
    version: str,
    gate: dict[str, object],
    flow_run_id: str | None,
) -> dict[str, object]:
    """Assemble what an auditor needs to trace ``version`` back to its inputs."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outs = {
        o["path"]: o["md5"] for s in lock["stages"].values() for o in s.get("outs", [])
    }
    evaluation = json.loads((repo / "metrics/evaluation.json").read_text())
    class_index = json.loads(class_index_path(repo / MODEL_FILE).read_text())
    return {
        "model": name,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_commit": _head(repo),
        "prefect_flow_run_id": flow_run_id,
        "dataset": {
            "prepared_md5": outs.get("data/prepared"),
            "split_md5": outs.get("data/split"),
            "images_per_subset": images_per_subset(repo / "data/split/split.csv"),
        },
        "weights_md5": outs.get(MODEL_FILE.as_posix()),
        "params": yaml.safe_load((repo / "params.yaml").read_text()),
        "libraries": library_versions(),
        "metrics": evaluation,
        "calibration": {
            **class_index.get("calibration", {"temperature": 1.0}),
            "test_ece": evaluation.get("ece"),
            "test_ece_uncalibrated": evaluation.get("ece_uncalibrated"),
        },
        "gate": gate,
    }


def _head(repo: Path) -> str:
    from tasks.register import git

    return git(repo, "rev-parse", "HEAD")


def render_model_card(card: dict[str, object]) -> str:
    """Write the card as Markdown for people; the JSON twin is for tools."""
    metrics, dataset = card["metrics"], card["dataset"]
    per_subset = dataset["images_per_subset"]
    views = sorted({view for counts in per_subset.values() for view in counts})
    counts = "\n".join(
        f"| {subset} | " + " | ".join(str(n.get(v, 0)) for v in views) + " |"
        for subset, n in per_subset.items()
    )
    header = "| subset | " + " | ".join(views) + " |\n|---|" + "---|" * len(views)
    gate = card["gate"]
    return (
        f"# Model card: {card['model']} {card['version']}\n\n"
        f"- Created: {card['created_at']}\n- Code commit: `{card['code_commit']}`\n"
        f"- Prefect flow run: `{card['prefect_flow_run_id']}`\n"
        f"- Weights md5: `{card['weights_md5']}`\n"
        f"- Dataset (data/prepared) md5: `{dataset['prepared_md5']}`\n"
        f"- Split md5: `{dataset['split_md5']}`\n\n"
        f"## Images\n\n{header}\n{counts}\n\n"
        f"## Test metrics\n\nAccuracy {metrics['accuracy']}, lateral recall "
        f"{metrics['lateral_recall']}, ROC AUC {metrics['roc_auc']}, "
        f"{metrics['test_images']} images; confusion matrix "
        f"`{json.dumps(metrics['confusion_matrix'])}`.\n\n"
        f"Calibration: `{json.dumps(card['calibration'])}`\n\n"
        f"## Gate\n\n{gate['action']}: {'; '.join(gate['reasons'])}\n\n"
        f"## Libraries\n\n`{json.dumps(card['libraries'])}`\n"
    )


def write_model_card(repo: Path, card: dict[str, object]) -> None:
    """Write the card beside the model, as JSON and Markdown."""
    atomic.write_json(repo / CARD_JSON, card)
    atomic.write_text(repo / CARD_MARKDOWN, render_model_card(card))


def verify_cached_outputs(repo: Path, commit: str, paths: tuple[str, ...]) -> list[str]:
    """Check that the DVC cache still holds the bytes ``dvc.lock`` pins.

    Returns:
        One problem per missing or altered file; empty when all match.
    """
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        cache = Path(dvc_repo.cache.local.path)
    pinned = locked_hashes(repo, commit)
    problems = []
    for path in paths:
        md5 = pinned.get(path)
        if md5 is None:
            problems.append(f"{path}: not in dvc.lock at {commit[:8]}")
            continue
        problems += _verify_object(cache, path, md5)
    return problems


def _verify_object(cache: Path, path: str, md5: str) -> list[str]:
    stored = cache / md5[:2] / md5[2:]
    if not stored.is_file():
        return [f"{path}: md5 {md5} is not in the local DVC cache (run `dvc fetch`)"]
    if not md5.endswith(".dir"):
        actual = file_md5(stored)
        return (
            []
            if actual == md5
            else [f"{path}: cached file has md5 {actual}, dvc.lock pins {md5}"]
        )
    problems = []
    for entry in json.loads(stored.read_text()):
        problems += _verify_object(cache, f"{path}/{entry['relpath']}", entry["md5"])
    return problems


def versions_containing(
    repo: Path, name: str, column: str, value: str
) -> list[dict[str, object]]:
    """List every registered version whose split has ``column == value``."""
    import dvc.api

    found = []
    for info in registered_versions(repo, name):
        with dvc.api.open("data/split/split.csv", repo=str(repo), rev=info.commit) as f:
            split = pd.read_csv(io.StringIO(f.read()), dtype=str)
        hits = split[split[column] == value]
        for subset, count in hits["subset"].value_counts().sort_index().items():
            found.append(
                {"version": info.version, "subset": subset, "images": int(count)}
            )
    return found


def model_card_at(repo: Path, commit: str) -> str:
    """Return the Markdown model card committed with a version."""
    return read_at(repo, commit, CARD_MARKDOWN.as_posix())
