"""Tell whether the source holds radiographs the newest registered model lacks.

The comparison is by content: each file the source names is hashed (sha256,
as ingest hashes it) and paired with its label, and the pairs are compared with
those in ``manifest.csv`` and ``rejected.csv`` of ``data/prepared`` as pinned
by the commit of the newest registered version. Between them those two tables
list every file ingest saw, kept or not, so a file that ingest rejected is not
"new" again every week. A renamed file is no change; a relabelled one is a
removal plus an addition. Not compared: patient ids and ingest settings; a
change there alone needs a forced run (``force=True``).

Nothing here imports TensorFlow: on two cores that import alone takes several
seconds, most of what an unchanged-data check would cost.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from tasks.digests import file_sha256
from tasks.registry import VersionInfo, registered_versions
from tasks.sources import SourceEntry

log = logging.getLogger(__name__)

PREPARED_TABLES = ("data/prepared/manifest.csv", "data/prepared/rejected.csv")
# (content key, view); the key is the sha256, or "unreadable:<path>" for a file
# that could not be read, as ingest records it with an empty sha256.
Listing = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class SourceChanges:
    """Images added and removed per view since a registered version."""

    since: str | None
    added: dict[str, int]
    removed: dict[str, int]
    relabelled: int
    source_images: int

    @property
    def found(self) -> bool:
        """Whether anything was added, removed or relabelled."""
        return bool(sum(self.added.values()) + sum(self.removed.values()))

    def describe(self) -> str:
        """One line for the run log: what changed, per view."""
        since = self.since or "the empty registry"
        if not self.found:
            return f"no new data since {since} ({self.source_images} source images)"
        parts = [f"{n} {view} added" for view, n in self.added.items() if n]
        parts += [f"{n} {view} removed" for view, n in self.removed.items() if n]
        if self.relabelled:
            parts.append(f"{self.relabelled} relabelled")
        return f"since {since}: " + ", ".join(parts)

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-ready copy for flow results and reports."""
        return asdict(self)


def content_key(sha256: str, source_path: str) -> str:
    """Key a file by content, or by path when it could not be read."""
    return sha256 or f"unreadable:{source_path}"


def listing_from_source(entries: Iterable[SourceEntry]) -> Listing:
    """Hash every listed file and pair it with its label."""
    pairs = set()
    for entry in entries:
        try:
            sha256 = file_sha256(entry.path)
        except OSError as error:
            log.warning("source: cannot read %s: %s", entry.source_path, error)
            sha256 = ""
        pairs.add((content_key(sha256, entry.source_path), entry.label))
    return frozenset(pairs)


def listing_from_tables(tables: Iterable[pd.DataFrame]) -> Listing:
    """Pair content keys and labels from manifest- or rejected-like tables."""
    return frozenset(
        (content_key(str(sha256), str(path)), str(label))
        for table in tables
        for sha256, path, label in zip(
            table["sha256"].fillna(""),
            table["source_path"],
            table["label"],
            strict=True,
        )
    )


def compare_listings(
    current: Listing, previous: Listing, since: str | None
) -> SourceChanges:
    """Count what ``current`` adds to and removes from ``previous``, per view."""
    added, removed = current - previous, previous - current
    views = sorted({view for _, view in current | previous})
    added_per_view = Counter(view for _, view in added)
    removed_per_view = Counter(view for _, view in removed)
    relabelled = {key for key, _ in added} & {key for key, _ in removed}
    return SourceChanges(
        since=since,
        added={view: added_per_view[view] for view in views},
        removed={view: removed_per_view[view] for view in views},
        relabelled=len(relabelled),
        source_images=len(current),
    )


def newest_registered(repo: Path, name: str) -> VersionInfo | None:
    """Return the newest registered version of ``name``; None when none is."""
    versions = registered_versions(repo, name)
    return versions[0] if versions else None


def listing_at(repo: Path, commit: str) -> Listing:
    """Read what ingest saw at ``commit``, from the DVC cache or the remote.

    A commit made before ingest wrote ``rejected.csv`` contributes its
    manifest alone.
    """
    import dvc.api
    from dvc.exceptions import PathMissingError

    tables = []
    for path in PREPARED_TABLES:
        try:
            with dvc.api.open(path, repo=str(repo), rev=commit) as handle:
                text = handle.read()
        except PathMissingError:
            if path == PREPARED_TABLES[0]:
                raise
            continue
        tables.append(pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False))
    return listing_from_tables(tables)
