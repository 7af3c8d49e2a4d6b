"""Champion and challenger over three training runs in one repository copy.

Run 1 trains normally and becomes ``prod``. Run 2 adds a new patient's images
and trains a deliberately crippled model (a learning rate of 1e-9): it passes
the (lowered) absolute gate but loses to the champion on the champion's test
images, so it is registered and put in ``staging`` only. Run 3 trains normally
again with a different seed and is promoted. Then rollback, predict and
lineage are checked against what each version really contained.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.flows.repo_copy import MODEL, commit_all, new_pipeline_repo, run, tiny_params
from tests.synthetic import draw_view

pytestmark = pytest.mark.slow
NEW_PATIENT = "frontal-patient-new"


def add_new_patient(repo: Path) -> list[Path]:
    """Add two frontal images of a patient the first version never saw."""
    source = repo / "data" / "synthetic"
    rng = np.random.default_rng(7)
    added = []
    with (source / "manifest.csv").open("a", newline="") as handle:
        writer = csv.writer(handle)
        for index in range(2):
            relative = f"frontal/new-{index}.png"
            Image.fromarray(draw_view("frontal", 64, rng)).save(source / relative)
            writer.writerow([relative, "frontal", NEW_PATIENT])
            added.append(source / relative)
    return added


def stages(repo: Path) -> dict[str, str]:
    """Map version to its stages, as ``laterality models`` prints them."""
    lines = run(repo, "laterality", "models").stdout.strip().splitlines()
    rows = csv.DictReader(io.StringIO("\n".join(lines)))
    return {row["version"]: row["stages"] for row in rows}


@pytest.fixture(scope="module")
def registry_repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    repo = new_pipeline_repo(tmp_path_factory.mktemp("registry"))
    first = run(repo, "laterality", "run", "--no-push").stdout
    after_first = stages(repo)

    added = add_new_patient(repo)
    tiny_params(
        repo,
        {"min_accuracy": 0.0, "min_lateral_recall": 0.0},
        learning_rate=1e-9,
        epochs=1,
    )
    commit_all(repo, "new images, crippled training")
    second = run(repo, "laterality", "run", "--no-push", check=False).stdout
    after_second = stages(repo)
    gate_second = json.loads((repo / "metrics/gate.json").read_text())

    tiny_params(
        repo,
        {"min_accuracy": 0.0, "min_lateral_recall": 0.0},
        learning_rate=0.003,
        epochs=8,
    )
    params = (repo / "params.yaml").read_text().replace("seed: 42", "seed: 7")
    (repo / "params.yaml").write_text(params)
    commit_all(repo, "normal training again")
    third = run(repo, "laterality", "run", "--no-push").stdout
    return {
        "repo": repo,
        "added": added,
        "outputs": (first, second, third),
        "stages": (after_first, after_second, stages(repo)),
        "gate_second": gate_second,
    }


def test_first_run_is_promoted_to_prod(registry_repo):
    assert registry_repo["stages"][0] == {"v0.0.1": "prod"}


def test_worse_challenger_is_registered_but_not_promoted(registry_repo):
    after_second = registry_repo["stages"][1]
    assert after_second == {"v0.0.2": "staging", "v0.0.1": "prod"}
    gate = registry_repo["gate_second"]
    assert gate["action"] == "register"
    assert gate["champion_version"] == "v0.0.1"
    frozen = gate["frozen"]
    assert frozen["champion"]["test_images"] == frozen["challenger"]["test_images"]
    assert frozen["challenger"]["accuracy"] < frozen["champion"]["accuracy"]


def test_better_challenger_is_promoted(registry_repo):
    assert registry_repo["stages"][2]["v0.0.3"] == "prod"
    assert "promote: registered version: v0.0.3" in registry_repo["outputs"][2]


def test_lineage_by_patient_lists_only_versions_that_saw_the_patient(registry_repo):
    repo = registry_repo["repo"]
    done = run(repo, "laterality", "lineage", "--patient", NEW_PATIENT)
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert sorted(row["version"] for row in rows) == ["v0.0.2", "v0.0.3"]
    split = (repo / "data/split/split.csv").read_text()
    table = list(csv.DictReader(io.StringIO(split)))
    sha = hashlib.sha256(registry_repo["added"][0].read_bytes()).hexdigest()
    subset = next(r["subset"] for r in table if r["sha256"] == sha)
    assert {r["subset"] for r in rows if r["version"] == "v0.0.3"} == {subset}
    assert NEW_PATIENT not in done.stdout + done.stderr


def test_lineage_of_an_unseen_patient_says_so_and_exits_1(registry_repo):
    repo = registry_repo["repo"]
    done = run(repo, "laterality", "lineage", "--patient", "nobody/1", check=False)
    assert done.returncode == 1
    assert done.stdout.splitlines() == ["version,subset,images"]
    assert "no registered version of laterality-classifier saw that patient" in (
        done.stderr
    )


def test_lineage_by_image_matches_content_not_name(registry_repo, tmp_path):
    repo = registry_repo["repo"]
    renamed = tmp_path / "renamed.png"
    renamed.write_bytes(registry_repo["added"][1].read_bytes())
    done = run(repo, "laterality", "lineage", "--image", str(renamed))
    versions = [row["version"] for row in csv.DictReader(io.StringIO(done.stdout))]
    assert sorted(versions) == ["v0.0.2", "v0.0.3"]


def test_predict_follows_prod_and_rollback_restores_the_previous_champion(
    registry_repo,
):
    repo = registry_repo["repo"]
    image = str(registry_repo["added"][0])
    by_version = {
        version: run(repo, "laterality", "predict", image, "--model", version).stdout
        for version in ("v0.0.1", "v0.0.3")
    }
    assert by_version["v0.0.1"] != by_version["v0.0.3"]
    assert run(repo, "laterality", "predict", image).stdout == by_version["v0.0.3"]
    assert "prod is now v0.0.1" in run(repo, "laterality", "rollback").stdout
    assert stages(repo)["v0.0.1"] == "prod"
    assert run(repo, "laterality", "predict", image).stdout == by_version["v0.0.1"]


def test_lineage_verifies_a_version_and_detects_tampered_weights(registry_repo):
    repo = registry_repo["repo"]
    clean = run(repo, "laterality", "lineage", "v0.0.3")
    assert "# Model card: laterality-classifier v0.0.3" in clean.stdout
    assert "verified: weights, data and split match dvc.lock" in clean.stdout
    lock = run(repo, "git", "show", f"{MODEL}@v0.0.3:dvc.lock").stdout
    md5 = lock.split("path: models/model.keras")[1].split("md5: ")[1].split()[0]
    cached = repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    cached.chmod(0o644)
    cached.write_bytes(cached.read_bytes() + b"tampered")
    tampered = run(repo, "laterality", "lineage", "v0.0.3", check=False)
    assert tampered.returncode == 1
    assert "models/model.keras: cached file has md5" in tampered.stderr
