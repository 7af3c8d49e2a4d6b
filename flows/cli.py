"""Command line ``laterality``: the pipeline's stages, the flow and prediction.

Run it from the repository root (or pass ``--repo``). Stage commands go
through DVC exactly as the Prefect flow does, so they do nothing when DVC finds
their stage up to date; ``--force`` reruns one anyway.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
from pathlib import Path

from tasks import pipeline

log = logging.getLogger("laterality")


def build_parser() -> argparse.ArgumentParser:
    """Describe every sub-command and its options."""
    parser = argparse.ArgumentParser(
        prog="laterality",
        description="Tell frontal (PA/AP) from lateral chest radiographs.",
    )
    parser.add_argument("--repo", type=Path, default=Path("."),
                        help="repository root holding dvc.yaml (default: .)")
    commands = parser.add_subparsers(dest="command", required=True)
    for stage in pipeline.STAGES:
        sub = commands.add_parser(stage, help=f"reproduce the DVC stage '{stage}'")
        sub.add_argument("--force", action="store_true",
                         help="rerun even when DVC finds the stage up to date")
    commands.add_parser(
        "register", help="register the evaluated model if it passes the gate"
    )
    run = commands.add_parser("run", help="run the Prefect flow training-pipeline")
    run.add_argument("--no-push", action="store_true", help="skip `dvc push`")
    predict = commands.add_parser(
        "predict", help="print path,label,probability CSV for radiograph files"
    )
    predict.add_argument("inputs", nargs="+", type=Path, metavar="FILE_OR_DIR")
    predict.add_argument(
        "--model", default=None,
        help="a model.keras path or a registered version (default: latest)",
    )
    return parser


def run_stage(repo: Path, stage: str, force: bool) -> int:
    """Reproduce one stage through DVC, echoing its output."""
    pipeline.reproduce_stage(repo, stage, lambda line: print(line, flush=True), force)
    return 0


def run_register(repo: Path) -> int:
    """Apply the quality gate and register the model; exit 1 when it fails."""
    from tasks.config import load_params
    from tasks.evaluate import EVALUATION_FILE
    from tasks.register import check_gate, read_metrics, register_model

    gate = load_params(repo / "params.yaml").register
    metrics = read_metrics(repo / EVALUATION_FILE)
    result = check_gate(metrics, gate.min_accuracy, gate.min_lateral_recall)
    if not result.passed:
        print(f"not registered: {'; '.join(result.reasons)}", file=sys.stderr)
        return 1
    print(register_model(repo, gate.model_name, metrics))
    return 0


def run_flow(repo: Path, push: bool) -> int:
    """Run the Prefect flow and report the registered version."""
    from flows.training_pipeline import training_pipeline

    result = training_pipeline(repo=str(repo), push=push)
    version = result["version"]
    print(f"registered version: {version}" if version else "no version registered")
    return 0 if version else 1


def run_predict(repo: Path, inputs: list[Path], model: str | None) -> int:
    """Write predictions as CSV on stdout; failures go to stderr."""
    from tasks.config import load_params
    from tasks.predict import collect_files, predict_files
    from tasks.registry import resolve_model

    name = load_params(repo / "params.yaml").register.model_name
    model_path = resolve_model(repo, name, model)
    predictions, failures = predict_files(model_path, collect_files(inputs))
    for failure in failures:
        print(f"{failure.path}: {failure.reason}", file=sys.stderr)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["path", "label", "probability"])
    for row in predictions:
        writer.writerow([row.path, row.label, f"{row.probability:.5f}"])
    return 0 if predictions else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``laterality`` console script."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    repo = args.repo.resolve()
    try:
        if args.command in pipeline.STAGES:
            return run_stage(repo, args.command, args.force)
        if args.command == "register":
            return run_register(repo)
        if args.command == "run":
            return run_flow(repo, not args.no_push)
        return run_predict(repo, args.inputs, args.model)
    except (FileNotFoundError, ValueError, LookupError, RuntimeError) as error:
        print(f"laterality {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
