"""Read the model registry: versions, stages, and the files behind them.

A version is a GTO tag ``<model>@vX.Y.Z`` on a commit; a stage (``staging``,
``prod``) is a GTO assignment tag. The weights of a version are the bytes its
commit's ``dvc.lock`` pins, fetched through ``dvc.api`` from the DVC cache or
remote and checked against that hash before use.
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from tasks import atomic
from tasks.digests import file_md5
from tasks.paths import class_index_path

log = logging.getLogger(__name__)

REGISTRY_CACHE = Path(".laterality") / "registry"
STAGES = ("staging", "prod")
_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")


@dataclass(frozen=True)
class VersionInfo:
    """One registered version: where it points and which stages hold it."""

    version: str
    commit: str
    created_at: datetime
    stages: tuple[str, ...]


def read_at(repo: Path, rev: str, path: str) -> str:
    """Return the text of ``path`` as committed at ``rev``.

    Raises:
        LookupError: the file does not exist at that revision.
    """
    done = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=repo, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise LookupError(f"registry: {path} not found at {rev}: {done.stderr.strip()}")
    return done.stdout


def locked_hashes(repo: Path, rev: str) -> dict[str, str]:
    """Map every DVC out path in ``dvc.lock`` at ``rev`` to its md5."""
    lock = yaml.safe_load(read_at(repo, rev, "dvc.lock")) or {}
    return {
        out["path"]: out["md5"]
        for stage in lock.get("stages", {}).values()
        for out in stage.get("outs", [])
    }


def registered_versions(repo: Path, name: str) -> list[VersionInfo]:
    """List registered versions of ``name``, newest first; empty when none."""
    from gto.api import show
    from gto.exceptions import ArtifactNotFound

    try:
        rows = show(str(repo), name, registered_only=True)
    except ArtifactNotFound:
        return []
    versions = [
        VersionInfo(
            version=row["version"],
            commit=row["commit_hexsha"],
            created_at=row["created_at"],
            stages=tuple(s["stage"] for s in row["stages"] if s.get("is_active")),
        )
        for row in rows
    ]
    return sorted(versions, key=lambda v: _version_key(v.version), reverse=True)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.lstrip("v").split("."))


def version_in_stage(repo: Path, name: str, stage: str) -> str | None:
    """Return the version currently assigned to ``stage``, if any."""
    events = _stage_events(repo, name, stage)
    return events[0]["version"] if events else None


def _stage_events(repo: Path, name: str, stage: str) -> list[dict]:
    """Assignments of ``stage``, newest first (tag counter breaks time ties)."""
    from gto.api import history
    from gto.exceptions import ArtifactNotFound

    try:
        events = history(str(repo), name)
    except ArtifactNotFound:
        return []
    assigned = [e for e in events if e["event"] == "assignment" and e["stage"] == stage]
    return sorted(
        assigned,
        key=lambda e: (e["timestamp"], int(e["ref"].rsplit("#", 1)[-1])),
        reverse=True,
    )


def assign_stage(repo: Path, name: str, version: str, stage: str) -> None:
    """Assign ``stage`` to ``version`` (again, if it held the stage before)."""
    from gto.api import assign

    if stage not in STAGES:
        raise ValueError(f"--stage: expected one of {list(STAGES)}, got '{stage}'")
    if version not in {v.version for v in registered_versions(repo, name)}:
        raise LookupError(f"registry: {name}@{version} is not registered")
    assign(
        str(repo),
        name,
        stage,
        version=version,
        force=True,
        message=f"Assign {stage} to {name} {version}",
    )
    log.info("registry: %s %s is now %s", name, version, stage)


def rollback(repo: Path, name: str, stage: str = "prod") -> str:
    """Give ``stage`` back to the version that held it before the current one.

    Raises:
        LookupError: the stage was never held by a different version.
    """
    events = _stage_events(repo, name, stage)
    if not events:
        raise LookupError(f"rollback: no version of {name} was ever in {stage}")
    current = events[0]["version"]
    earlier = [e["version"] for e in events[1:] if e["version"] != current]
    if not earlier:
        raise LookupError(f"rollback: {current} is the only version {stage} has held")
    assign_stage(repo, name, earlier[0], stage)
    return earlier[0]


def fetch_version(repo: Path, name: str, version: str) -> Path:
    """Copy the weights and class map of ``name@version`` into a local cache.

    Returns:
        The path of the fetched ``model.keras``, whose md5 matches ``dvc.lock``.

    Raises:
        LookupError: the version or its files cannot be found.
        ValueError: the fetched weights do not match the hash in ``dvc.lock``.
    """
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        found = dvc.api.artifacts_show(name, version=version, repo=str(repo))
    except DvcException as error:
        raise LookupError(f"registry: {name}@{version}: {error}") from error
    weights = Path(found["path"])
    expected = locked_hashes(repo, found["rev"]).get(weights.as_posix())
    target = repo / REGISTRY_CACHE / name / version / "model.keras"
    if not (target.is_file() and file_md5(target) == expected):
        for source, destination in (
            (weights, target),
            (class_index_path(weights), class_index_path(target)),
        ):
            with (
                dvc.api.open(
                    source.as_posix(), repo=str(repo), rev=found["rev"], mode="rb"
                ) as stored,
                atomic.atomic_path(destination) as temporary,
            ):
                temporary.write_bytes(stored.read())
        log.info("registry: fetched %s@%s (%s)", name, version, found["rev"][:8])
    actual = file_md5(target)
    if actual != expected:
        raise ValueError(
            f"registry: {name}@{version} weights have md5 {actual}, but dvc.lock at "
            f"{found['rev'][:8]} pins {expected}; refusing to use them"
        )
    return target


def resolve_model(repo: Path, name: str, spec: str | None) -> Path:
    """Turn ``--model`` (a path, a version, a stage or nothing) into a model file.

    Without ``spec`` the version in ``prod`` is used.
    """
    if spec and Path(spec).is_file():
        return Path(spec)
    if spec and "@" in spec:
        name, spec = spec.split("@", 1)
    spec = spec or "prod"
    if spec in STAGES:
        version = version_in_stage(repo, name, spec)
        if version is None:
            raise LookupError(
                f"registry: no version of {name} is in '{spec}'; run `laterality run`, "
                f"`laterality promote VERSION --stage {spec}` or pass --model PATH"
            )
        spec = version
    if not _VERSION.match(spec):
        raise ValueError(
            "--model: expected a model file, a version like v0.0.1 or a stage "
            f"({', '.join(STAGES)}), got '{spec}'"
        )
    return fetch_version(repo, name, spec)
