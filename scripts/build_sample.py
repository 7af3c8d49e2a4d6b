"""Build the bundled real-image sample in ``data/sample`` from the shared data.

The sample holds every lateral radiograph of the covid-chestxray collection and
200 frontal radiographs drawn from covid-chestxray, the Hannover Medical School
repository and the torchxrayvision test fixtures. Images are downscaled so that
their long side is at most 512 px (Lanczos) and re-encoded in their source
format; a few chosen files, and files already small enough, are copied
byte-for-byte. Every shared radiograph left out of the sample is listed in
``holdout.csv`` so that accuracy can later be reported on unseen images.

Selection is by whole patient wherever a patient id exists, so no patient has
images both in the sample and in the hold-out set. The run is deterministic.

Usage::

    python scripts/build_sample.py --shared ../shared/data --out data/sample
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import random
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from PIL import Image

LOG = logging.getLogger("build_sample")

SEED = 20240517
MAX_SIDE = 512
JPEG_QUALITY = 92

N_COVID_FRONTAL = 100
N_HANNOVER_FRONTAL = 95
N_FIXTURE_FRONTAL = 5

COVID = "covid-chestxray"
HANNOVER = "hannover"
TXV = "torchxrayvision"

COVID_REPO = "https://github.com/ieee8023/covid-chestxray-dataset"
COVID_FORK = "https://github.com/s-mostafa-a/covid-chestxray-dataset"
HANNOVER_REPO = "https://github.com/ml-workgroup/covid-19-image-repository"
TXV_REPO = "https://github.com/mlmed/torchxrayvision"
HANNOVER_LICENCE = "CC BY 3.0"
TXV_LICENCE = "Apache-2.0 (torchxrayvision repository)"

COVID_VIEW_LABELS = {
    "PA": "frontal",
    "AP": "frontal",
    "AP Supine": "frontal",
    "L": "lateral",
}
HANNOVER_VIEW_LABELS = {"ap": "frontal", "pa": "frontal"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}

# Files copied unchanged at full size, chosen to cover formats, modes and sizes:
# RGB JPEGs >= 2000 px (one frontal, one lateral of the same patient), an RGBA
# PNG lateral with an ICC profile and real transparency, an RGBA PNG stored under
# a ``.jpg`` name, an upper-case ``.PNG``, an 8-bit grey JPEG, a 2000 px RGB PNG
# and a Hannover grey PNG. Files already at most MAX_SIDE px are copied too.
FULL_SIZE: frozenset[tuple[str, str]] = frozenset(
    {
        (COVID, "16663_1_1.jpg"),
        (COVID, "16663_1_2.jpg"),
        (COVID, "pneumocystis-pneumonia-2-L.png"),
        (COVID, "000001-19.jpg"),
        (COVID, "16745_2_1.PNG"),
        (COVID, "covid-19-pneumonia-41-day-0.jpg"),
        (COVID, "article_river_1a00a3c07ea311eab70491c6fb93d336-figure-2.png"),
        (HANNOVER, "fff13f3a.png"),
    }
)

# covid-chestxray patients 97 (Radiopaedia) and 178 (Eurorad) are one case
# published twice: four of their images are near-identical. Both stay out of
# the sample so that grouped splits of the sample cannot leak between them.
EXCLUDED_COVID_PATIENTS = frozenset({"97", "178"})

FIELDS = [
    "path",
    "label",
    "patient_id",
    "view",
    "source",
    "original_file",
    "licence",
    "url",
    "resized",
    "original_width",
    "original_height",
]


@dataclass(frozen=True)
class Record:
    """One radiograph of the shared data, with labels from its source."""

    source: str
    rel_path: str
    label: str
    patient_id: str
    view: str
    licence: str
    url: str

    @property
    def name(self) -> str:
        """Return the original file name."""
        return Path(self.rel_path).name

    @property
    def is_dicom(self) -> bool:
        """Return whether the file is a DICOM file."""
        return self.rel_path.lower().endswith(".dcm")

    def sample_path(self) -> str:
        """Return the file's path inside the sample, ``<label>/<src>__<stem>.<ext>``."""
        path = Path(self.rel_path)
        return f"{self.label}/{self.source}__{path.stem}{path.suffix.lower()}"


def sha256(path: Path) -> str:
    """Return the hex SHA-256 digest of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_csv(path: Path) -> list[dict[str, str]]:
    """Read a CSV file with a header into a list of row dicts."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def covid_url(row: dict[str, str]) -> str:
    """Return the best provenance link of a covid-chestxray row."""
    if row["url"]:
        return row["url"]
    if row["doi"]:
        return f"https://doi.org/{row['doi']}"
    return COVID_REPO


def load_covid(shared: Path) -> list[Record]:
    """Load covid-chestxray records, cross-checking ``view`` against ``label``."""
    records = []
    for row in read_csv(shared / COVID / "metadata.csv"):
        label = COVID_VIEW_LABELS[row["view"]]
        if row["label"] and row["label"] != label:
            msg = f"{row['filename']}: view {row['view']} but label {row['label']}"
            raise ValueError(msg)
        records.append(
            Record(
                source=COVID,
                rel_path=f"{COVID}/images/{row['filename']}",
                label=label,
                patient_id=f"{COVID}/{row['patientid']}",
                view=row["view"],
                licence=row["license"],
                url=covid_url(row),
            )
        )
    return records


def load_hannover(shared: Path) -> list[Record]:
    """Load Hannover records; ``projection`` ap/pa means frontal."""
    return [
        Record(
            source=HANNOVER,
            rel_path=f"{HANNOVER}/png/{row['image_id']}.png",
            label=HANNOVER_VIEW_LABELS[row["projection"]],
            patient_id=f"{HANNOVER}/{row['patient_id']}",
            view=row["projection"],
            licence=HANNOVER_LICENCE,
            url=HANNOVER_REPO,
        )
        for row in read_csv(shared / HANNOVER / "data.csv")
    ]


def dicom_view(path: Path) -> str:
    """Return the DICOM ViewPosition of a file, or an empty string."""
    return str(pydicom.dcmread(path, stop_before_pixels=True).get("ViewPosition", ""))


def load_fixtures(shared: Path, known_hashes: set[str]) -> list[Record]:
    """Load torchxrayvision fixture records, all frontal per the shared README.

    Files byte-identical to an image already loaded from another source are
    skipped, so each radiograph is listed once, under its richer metadata.
    """
    folder = shared / "fixtures-torchxrayvision"
    records = []
    for path in sorted(folder.rglob("*")):
        suffix = path.suffix.lower()
        if not path.is_file() or suffix not in IMAGE_SUFFIXES | {".dcm"}:
            continue
        if sha256(path) in known_hashes:
            LOG.warning("skipping %s: byte-identical to a covid-chestxray image", path)
            continue
        records.append(
            Record(
                source=TXV,
                rel_path=path.relative_to(shared).as_posix(),
                label="frontal",
                patient_id="",
                view=dicom_view(path) if suffix == ".dcm" else "",
                licence=TXV_LICENCE,
                url=TXV_REPO,
            )
        )
    return records


def group_by_patient(records: Iterable[Record]) -> dict[str, list[Record]]:
    """Group records by patient id."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        groups[record.patient_id].append(record)
    return dict(groups)


def fill_by_patient(
    groups: dict[str, list[Record]], target: int, rng: random.Random
) -> list[str]:
    """Pick whole patients at random until their images number exactly ``target``.

    Patients are visited in a seeded random order; one is taken when all of its
    images still fit in the remaining budget.
    """
    order = sorted(groups)
    rng.shuffle(order)
    chosen: list[str] = []
    remaining = target
    for patient in order:
        if remaining == 0:
            break
        if len(groups[patient]) <= remaining:
            chosen.append(patient)
            remaining -= len(groups[patient])
    if remaining:
        msg = f"could not pick whole patients adding up to {target} images"
        raise ValueError(msg)
    return chosen


def forced_patients(records: Iterable[Record]) -> set[str]:
    """Return the patients of the records that must be kept at full size."""
    return {r.patient_id for r in records if (r.source, r.name) in FULL_SIZE}


def select_covid(records: Sequence[Record], rng: random.Random) -> list[Record]:
    """Select every lateral and ``N_COVID_FRONTAL`` frontals of covid-chestxray.

    All frontals of patients with a lateral image come first, then those of the
    patients holding a full-size file, then whole random patients.
    """
    laterals = [r for r in records if r.label == "lateral"]
    frontals = [r for r in records if r.label == "frontal"]
    keep = {r.patient_id for r in laterals} | forced_patients(records)
    chosen = [r for r in frontals if r.patient_id in keep]
    others = group_by_patient(
        r
        for r in frontals
        if r.patient_id not in keep
        and r.patient_id.split("/", 1)[1] not in EXCLUDED_COVID_PATIENTS
    )
    for patient in fill_by_patient(others, N_COVID_FRONTAL - len(chosen), rng):
        chosen.extend(others[patient])
    return laterals + chosen


def select_hannover(records: Sequence[Record], rng: random.Random) -> list[Record]:
    """Select ``N_HANNOVER_FRONTAL`` Hannover frontals by whole patients."""
    keep = forced_patients(records)
    chosen = [r for r in records if r.patient_id in keep]
    others = group_by_patient(r for r in records if r.patient_id not in keep)
    for patient in fill_by_patient(others, N_HANNOVER_FRONTAL - len(chosen), rng):
        chosen.extend(others[patient])
    return chosen


def select_fixtures(records: Sequence[Record]) -> list[Record]:
    """Select the non-DICOM torchxrayvision fixtures."""
    chosen = [r for r in records if not r.is_dicom]
    if len(chosen) != N_FIXTURE_FRONTAL:
        msg = f"expected {N_FIXTURE_FRONTAL} fixture images, found {len(chosen)}"
        raise ValueError(msg)
    return chosen


def flatten_mode(image: Image.Image) -> Image.Image:
    """Replace a palette image by its grey or colour equivalent.

    Other modes are returned unchanged so that the colour mode of the source
    survives: RGB stays RGB, RGBA stays RGBA, L stays L, 16-bit stays 16-bit.
    """
    if image.mode != "P":
        return image
    if "transparency" in image.info:
        return image.convert("RGBA")
    rgb = image.convert("RGB")
    red, green, blue = rgb.split()
    if red.tobytes() == green.tobytes() == blue.tobytes():
        return red
    return rgb


def resized_size(width: int, height: int) -> tuple[int, int]:
    """Return the size with the long side scaled down to ``MAX_SIDE``."""
    scale = MAX_SIDE / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def save_resized(image: Image.Image, dest: Path) -> None:
    """Downscale an image with Lanczos and save it in its source format.

    ICC profiles and EXIF blocks are carried over; nothing else is changed.
    """
    fmt = image.format
    extra = {k: image.info[k] for k in ("icc_profile", "exif") if image.info.get(k)}
    small = flatten_mode(image).resize(
        resized_size(*image.size), Image.Resampling.LANCZOS
    )
    if fmt == "JPEG":
        small.save(dest, format="JPEG", quality=JPEG_QUALITY, **extra)
    elif fmt == "PNG":
        small.save(dest, format="PNG", **extra)
    else:
        msg = f"unsupported source format {fmt} for {dest.name}"
        raise ValueError(msg)


def image_size(path: Path) -> tuple[int, int]:
    """Return (width, height) of an image or DICOM file."""
    if path.suffix.lower() == ".dcm":
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        return int(dataset.Columns), int(dataset.Rows)
    with Image.open(path) as image:
        return image.size


def write_image(record: Record, shared: Path, out: Path) -> dict[str, str]:
    """Write one sample image and return its metadata row."""
    src = shared / record.rel_path
    dest = out / record.sample_path()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as image:
        width, height = image.size
        resize = (record.source, record.name) not in FULL_SIZE and max(
            width, height
        ) > MAX_SIDE
        if resize:
            save_resized(image, dest)
    if not resize:
        shutil.copyfile(src, dest)
    return row_for(record, record.sample_path(), "yes" if resize else "no", src)


def row_for(record: Record, path: str, resized: str, src: Path) -> dict[str, str]:
    """Build a metadata row for a record."""
    width, height = image_size(src)
    return {
        "path": path,
        "label": record.label,
        "patient_id": record.patient_id,
        "view": record.view,
        "source": record.source,
        "original_file": record.rel_path,
        "licence": record.licence,
        "url": record.url,
        "resized": resized,
        "original_width": str(width),
        "original_height": str(height),
    }


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    """Write metadata rows sorted by path."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda row: row["path"]))


def full_size_lines(rows: Iterable[dict[str, str]]) -> list[str]:
    """Return Markdown list lines naming the files copied unchanged."""
    lines = []
    for row in rows:
        if row["resized"] != "no":
            continue
        chosen = (row["source"], Path(row["original_file"]).name) in FULL_SIZE
        why = "kept at full size" if chosen else f"already at most {MAX_SIDE} px"
        size = f"{row['original_width']}x{row['original_height']}"
        lines.append(f"- `{row['path']}` ({size}, {why})")
    return lines


ATTRIBUTION = """\
# Attribution of the bundled sample images

The radiographs in this folder were taken from three public collections. Each
collection keeps its own licence; `metadata.csv` gives the licence and a source
link for every image, and `holdout.csv` does the same for the shared images that
were left out of the sample. `scripts/build_sample.py` rebuilds the folder.

## covid-chestxray

A collection of chest radiographs of COVID-19 and other pneumonias, gathered
from journal articles and teaching sites such as Radiopaedia and Eurorad.

- Repository: {covid_repo}
  (copied from the fork {covid_fork}, commit 173779d).
- Licence: set per image in the `license` column of the upstream metadata and
  copied to the `licence` column here (CC BY-NC-SA 4.0, CC BY-NC-SA, CC BY 4.0,
  CC BY-SA, CC BY). Only images whose licence allows redistribution were used.
- Cite: Joseph Paul Cohen, Paul Morrison, Lan Dao, "COVID-19 image data
  collection", arXiv:2003.11597, 2020.

Images under a CC BY-NC-SA licence keep their terms: they may not be used
commercially, and anything derived from them must be shared under the same
licence. The rest of this repository's licence does not change that.

## hannover

The COVID-19 image repository of the Institute for Diagnostic and
Interventional Radiology, Hannover Medical School (downscaled PNG exports).

- Repository: {hannover_repo}
  (commit ad7ab09).
- Licence: Creative Commons Attribution 3.0 (CC BY 3.0); full text in
  `LICENSES/hannover-LICENSE`.
- Cite: Hannover Medical School, COVID-19 image repository,
  github.com/ml-workgroup/covid-19-image-repository.

## torchxrayvision

Test images shipped with the torchxrayvision library (mlmed/torchxrayvision);
they come from public research sets (NIH ChestX-ray14, TBX11K). Two of its
files, `16747_3_1.jpg` and `covid-19-pneumonia-58-prior.jpg`, are byte-identical
to covid-chestxray images and are listed only under covid-chestxray.

- Repository: {txv_repo}
  (commit f4087a0).
- Licence: the repository's Apache License 2.0; full text in
  `LICENSES/torchxrayvision-LICENSE`.
- Cite: Cohen et al., "TorchXRayVision: A library of chest X-ray datasets and
  models", github.com/mlmed/torchxrayvision.

## Changes made

Images whose long side exceeded {max_side} px were downscaled to a long side of
{max_side} px with Lanczos resampling and re-encoded in their original format
(JPEG at quality {quality}, PNG lossless); palette images would be turned into
grey or RGB first, but the sources hold none. Colour mode, orientation and
intensities were not changed, and ICC profiles and EXIF blocks were kept. File
names were prefixed with the source and their extensions lower-cased. These
files were copied byte-for-byte without any change:

{full_size}
"""


def write_attribution(out: Path, rows: list[dict[str, str]]) -> None:
    """Write ATTRIBUTION.md, naming the files left unchanged."""
    text = ATTRIBUTION.format(
        covid_repo=COVID_REPO,
        covid_fork=COVID_FORK,
        hannover_repo=HANNOVER_REPO,
        txv_repo=TXV_REPO,
        max_side=MAX_SIDE,
        quality=JPEG_QUALITY,
        full_size="\n".join(full_size_lines(sorted(rows, key=lambda r: r["path"]))),
    )
    (out / "ATTRIBUTION.md").write_text(text, encoding="utf-8")


def copy_licences(shared: Path, out: Path) -> None:
    """Copy the licence texts of the sources that ship one."""
    folder = out / "LICENSES"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared / HANNOVER / "LICENSE", folder / "hannover-LICENSE")
    shutil.copyfile(
        shared / "fixtures-torchxrayvision" / "LICENSE",
        folder / "torchxrayvision-LICENSE",
    )


def clean_output(out: Path) -> None:
    """Remove what an earlier run of this script wrote, and nothing else."""
    for sub in ("frontal", "lateral", "LICENSES"):
        if (out / sub).is_dir():
            shutil.rmtree(out / sub)
    for name in ("metadata.csv", "holdout.csv", "ATTRIBUTION.md"):
        (out / name).unlink(missing_ok=True)


def build(shared: Path, out: Path) -> None:
    """Build the sample folder ``out`` from the shared data folder ``shared``."""
    rng = random.Random(SEED)
    covid = load_covid(shared)
    hannover = load_hannover(shared)
    fixtures = load_fixtures(shared, {sha256(shared / r.rel_path) for r in covid})
    everything = covid + hannover + fixtures
    sample = (
        select_covid(covid, rng)
        + select_hannover(hannover, rng)
        + select_fixtures(fixtures)
    )
    picked = {r.rel_path for r in sample}
    missing = FULL_SIZE - {(r.source, r.name) for r in sample}
    if missing:
        msg = f"full-size files not in the sample: {sorted(missing)}"
        raise ValueError(msg)
    clean_output(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [write_image(record, shared, out) for record in sample]
    holdout = [
        row_for(r, r.rel_path, "", shared / r.rel_path)
        for r in everything
        if r.rel_path not in picked
    ]
    write_csv(out / "metadata.csv", rows)
    write_csv(out / "holdout.csv", holdout)
    write_attribution(out, rows)
    copy_licences(shared, out)
    counts = Counter((row["label"], row["source"]) for row in rows)
    for (label, source), count in sorted(counts.items()):
        LOG.info("sample %-8s %-16s %4d", label, source, count)
    LOG.info("sample %d images, hold-out %d images", len(rows), len(holdout))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared",
        type=Path,
        default=Path("../shared/data"),
        help="shared data folder (default: ../shared/data)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("data/sample"),
        help="output folder (default: data/sample)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the sample build from the command line."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = parse_args(argv)
    build(args.shared, args.out)


if __name__ == "__main__":
    main()
