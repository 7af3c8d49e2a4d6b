"""Find registered model versions and fetch their files from DVC.

A version lives in git (a GTO tag on a commit) and its weights live in the DVC
cache or remote, addressed by that commit's ``dvc.lock``. Fetching goes through
``dvc.api`` so the bytes are exactly those the lock file pins.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from tasks import atomic
from tasks.model import class_index_path

log = logging.getLogger(__name__)

REGISTRY_CACHE = Path(".laterality") / "registry"
_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")


def latest_version(repo: Path, name: str) -> str:
    """Return the newest registered version of ``name``.

    Raises:
        LookupError: nothing is registered yet.
    """
    from gto.api import find_latest_version

    latest = find_latest_version(str(repo), name)
    if latest is None:
        raise LookupError(
            f"registry: no version of '{name}' is registered in {repo}; "
            "run `laterality run` or pass --model PATH"
        )
    return latest.version


def fetch_version(repo: Path, name: str, version: str) -> Path:
    """Copy the weights and class map of ``name@version`` into a local cache.

    Returns:
        The path of the fetched ``model.keras``.

    Raises:
        LookupError: the version or its files cannot be found.
    """
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        found = dvc.api.artifacts_show(name, version=version, repo=str(repo))
    except DvcException as error:
        raise LookupError(f"registry: {name}@{version}: {error}") from error
    target = REGISTRY_CACHE / name / version / "model.keras"
    if target.is_file():
        return target
    weights = Path(found["path"])
    for source, destination in (
        (weights, target),
        (class_index_path(weights), class_index_path(target)),
    ):
        with dvc.api.open(
            source.as_posix(), repo=str(repo), rev=found["rev"], mode="rb"
        ) as remote, atomic.atomic_path(destination) as temporary:
            temporary.write_bytes(remote.read())
    log.info("registry: fetched %s@%s from commit %s", name, version, found["rev"][:8])
    return target


def resolve_model(repo: Path, name: str, spec: str | None) -> Path:
    """Turn ``--model`` (a path, a version or nothing) into a model file path.

    Without ``spec`` the latest registered version is used.
    """
    if spec and Path(spec).is_file():
        return Path(spec)
    if spec and "@" in spec:
        name, spec = spec.split("@", 1)
    version = spec or latest_version(repo, name)
    if not _VERSION.match(version):
        raise ValueError(
            f"--model: expected a model file or a version like v0.0.1, got '{spec}'"
        )
    return fetch_version(repo, name, version)
