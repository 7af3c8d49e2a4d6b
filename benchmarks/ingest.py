"""Benchmark ingest: images per second on 1 and 2 workers, and peak memory.

Generates 5,000 distinct 512 x 512 JPEG radiograph-like images (half frontal,
half lateral) in a temporary folder, then runs the ingest step on the first
1,000 and on all 5,000, each with 1 and 2 decode workers and an empty decode
cache, every run in a fresh Python process so that peak memory is its own;
each configuration runs ``--repeats`` times and keeps its fastest run.
Peak memory is given twice: the coordinating process alone (``ru_maxrss``)
and the whole process tree (coordinator, fork server and workers, sampled
every 50 ms from ``/proc``). A last run repeats 5,000 images on a warm cache
to show what an unchanged rerun costs.

Usage::

    python benchmarks/ingest.py [--sizes 1000 5000] [--workers 1 2] [--repeats 2]

Targets (issue 3): 2 workers at least 1.7x the rate of 1; peak memory at
5,000 images at most 1.2x the peak at 1,000.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
SIDE = 512
IMAGE_SIZE = 256
VIEWS = ("frontal", "lateral")


def draw(view: str, index: int, noise: list[np.ndarray]) -> np.ndarray:
    """Return a distinct uint8 image: a view template plus shifted noise."""
    rows, cols = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    image = np.full((SIDE, SIDE), 190.0)
    centres = [(0.5, 0.32), (0.5, 0.68)] if view == "frontal" else [(0.5, 0.45)]
    for row, col in centres:
        image[((rows - row) / 0.3) ** 2 + ((cols - col) / 0.15) ** 2 <= 1] = 60.0
    image += np.roll(noise[index % len(noise)], index, axis=1)
    image[:4, :4] = index % 251  # a few pixels that differ for every index
    return np.clip(image, 0, 255).astype(np.uint8)


def generate(folder: Path, count: int) -> None:
    """Write ``count`` JPEGs, alternating views, into ``folder/<view>/``."""
    rng = np.random.default_rng(0)
    noise = [rng.normal(0, 12, (SIDE, SIDE)) for _ in range(8)]
    for view in VIEWS:
        (folder / view).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        view = VIEWS[index % 2]
        image = Image.fromarray(draw(view, index, noise))
        image.save(folder / view / f"{index:05d}.jpg", quality=90)


def subset(source: Path, folder: Path, count: int) -> Path:
    """Hard-link the first ``count`` generated images into ``folder``."""
    for view in VIEWS:
        (folder / view).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        name = f"{VIEWS[index % 2]}/{index:05d}.jpg"
        os.link(source / name, folder / name)
    return folder


def _tree_rss_kib(pid: int) -> int:
    """Sum the resident memory of ``pid`` and all its descendants, in KiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        children = " ".join(
            task.read_text() for task in Path(f"/proc/{pid}/task").glob("*/children")
        )
    except OSError:
        return 0
    rss = next(
        (
            int(line.split()[1])
            for line in status.splitlines()
            if line.startswith("VmRSS")
        ),
        0,
    )
    return rss + sum(_tree_rss_kib(int(child)) for child in children.split())


def measure(source: Path, workers: int, scratch: Path) -> dict[str, float]:
    """Run ingest once in this process; return seconds, CPU and peak memory.

    Workers are forked as the stage's entry point forks them, so their CPU
    time is counted in ``RUSAGE_CHILDREN`` once the pool has shut down.
    """
    from tasks.ingest import ingest_source
    from tasks.radiograph import DecodeLimits

    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss_kib(os.getpid()))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started, cpu = time.perf_counter(), os.times()
    result = ingest_source(
        source,
        source,
        scratch / "prepared",
        VIEWS,
        IMAGE_SIZE,
        DecodeLimits(),
        workers,
        b"0" * 64,
        cache_dir=scratch / "cache",
        start_method="fork",
    )
    seconds, used = time.perf_counter() - started, os.times()
    done.set()
    sampler.join()
    return {
        "seconds": seconds,
        "cpu_seconds": sum(used[:4]) - sum(cpu[:4]),
        "images": sum(result.summary["images_per_class"].values()),
        "decoded": result.decoded,
        "parent_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tree_peak_mib": peak[0] / 1024,
    }


def run_measurement(source: Path, workers: int, scratch: Path) -> dict[str, float]:
    """Measure in a fresh interpreter so each peak belongs to one run."""
    command = [
        sys.executable,
        __file__,
        "--measure",
        str(source),
        str(workers),
        str(scratch),
    ]
    done = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Generate the images, run every measurement, print the table and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[1000, 5000])
    parser.add_argument("--workers", type=int, nargs=2, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        source, workers, scratch = args.measure
        print(json.dumps(measure(Path(source), int(workers), Path(scratch))))
        return
    with tempfile.TemporaryDirectory(prefix="ingest-benchmark-") as folder:
        report(Path(folder), args.sizes, args.workers, args.repeats)


def report(folder: Path, sizes: list[int], workers: list[int], repeats: int) -> None:
    """Print one line per configuration, then the ratios the targets are about.

    Each configuration runs ``repeats`` times, interleaved with the others, and
    keeps its fastest run (as ``timeit`` does): on a shared machine the
    slower runs measure the neighbours, not ingest. Peak memory is the
    highest of the repeats.
    """
    small, large = sizes
    started = time.perf_counter()
    generate(folder / "all", large)
    print(
        f"generated {large} {SIDE}x{SIDE} JPEGs in "
        f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs"
    )
    sources = {
        small: subset(folder / "all", folder / "small", small),
        large: folder / "all",
    }
    runs: dict[tuple[int, int], list[dict[str, float]]] = {}
    for count in sizes:
        for _ in range(repeats):
            for worker_count in workers:
                scratch = folder / f"run-{count}-{worker_count}-{len(runs)}"
                runs.setdefault((count, worker_count), []).append(
                    run_measurement(sources[count], worker_count, scratch)
                )
                shutil.rmtree(scratch)
    results = {key: _best(outcomes) for key, outcomes in runs.items()}
    for (count, worker_count), best in results.items():
        print(
            f"{count:>5} images, {worker_count} worker(s): "
            f"{best['images'] / best['seconds']:6.1f} images/s "
            f"({best['seconds']:.1f} s, {best['cpu_seconds'] / count * 1000:.1f} "
            f"CPU ms per image), peak memory: coordinator "
            f"{best['parent_peak_mib']:.0f} MiB, process tree "
            f"{best['tree_peak_mib']:.0f} MiB"
        )
    scratch = folder / "warm"
    run_measurement(sources[large], workers[1], scratch)
    warm = run_measurement(sources[large], workers[1], scratch)
    print(
        f"{large} images again on a warm cache, {workers[1]} workers: "
        f"{warm['seconds']:.1f} s, {warm['decoded']} decoded"
    )
    print(f"load average after the runs: {os.getloadavg()[0]:.2f}")
    for count in sizes:
        one, two = results[count, workers[0]], results[count, workers[1]]
        print(
            f"speed-up {workers[1]} vs {workers[0]} workers at {count} images: "
            f"{one['seconds'] / two['seconds']:.2f}x (target >= 1.7x)"
        )
    for kind in ("parent_peak_mib", "tree_peak_mib"):
        for worker_count in workers:
            ratio = (
                results[large, worker_count][kind] / results[small, worker_count][kind]
            )
            print(
                f"peak memory {large} / {small} images, {worker_count} worker(s), "
                f"{kind.split('_')[0]}: {ratio:.2f}x (target <= 1.2x)"
            )


def _best(outcomes: list[dict[str, float]]) -> dict[str, float]:
    fastest = min(outcomes, key=lambda outcome: outcome["seconds"])
    peaks = {
        kind: max(o[kind] for o in outcomes)
        for kind in ("parent_peak_mib", "tree_peak_mib")
    }
    return {**fastest, **peaks}


if __name__ == "__main__":
    main()
