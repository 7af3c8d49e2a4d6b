"""Command line ``laterality``: stages, the flow, prediction and the registry.

Run it from the repository root (or pass ``--repo``). Stage commands go through
DVC exactly as the Prefect flow does, so they do nothing when DVC finds their
stage up to date; ``--force`` reruns one anyway.
"""

from __future__ import annotations

import argparse
import csv
import json
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
    parser.add_argument(
        "--repo",
        type=Path,
        default=Path("."),
        help="repository root holding dvc.yaml (default: .)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for stage in pipeline.STAGES:
        sub = commands.add_parser(stage, help=f"reproduce the DVC stage '{stage}'")
        sub.add_argument(
            "--force",
            action="store_true",
            help="rerun even when DVC finds the stage up to date",
        )
    commands.add_parser("register", help="apply the gate and register the model")
    run = commands.add_parser("run", help="run the Prefect flow training-pipeline")
    run.add_argument("--no-push", action="store_true", help="skip `dvc push`")
    serve = commands.add_parser(
        "serve", help="schedule the Prefect flow retraining and run it when due"
    )
    serve.add_argument(
        "--start-server",
        action="store_true",
        help="start a Prefect server on 127.0.0.1 first (else use PREFECT_API_URL)",
    )
    serve.add_argument("--port", type=int, default=4200, help="its port (4200)")
    predict = commands.add_parser(
        "predict", help="print path,label,probability CSV for radiograph files"
    )
    predict.add_argument("inputs", nargs="+", type=Path, metavar="FILE_OR_DIR")
    predict.add_argument(
        "--model",
        default=None,
        help="a model.keras path, a version or a stage (default: prod)",
    )
    _add_registry_commands(commands)
    return parser


def _add_registry_commands(commands: argparse._SubParsersAction) -> None:
    commands.add_parser("models", help="list registered versions and their stages")
    promote = commands.add_parser("promote", help="assign a stage to a version")
    promote.add_argument("version")
    promote.add_argument("--stage", default="prod", choices=("staging", "prod"))
    commands.add_parser("rollback", help="give prod back to the previous version")
    lineage = commands.add_parser(
        "lineage", help="print a version's model card, or find patients and images"
    )
    target = lineage.add_mutually_exclusive_group(required=True)
    target.add_argument("version", nargs="?")
    target.add_argument("--patient", help="a patient id, as in the source data")
    target.add_argument("--image", type=Path, help="an image file, matched by content")


def model_name(repo: Path) -> str:
    """Return the registered model's name from ``params.yaml``."""
    from tasks.config import load_params

    return load_params(repo / "params.yaml").register.model_name


def run_stage(repo: Path, stage: str, force: bool) -> int:
    """Reproduce one stage through DVC, echoing its output."""
    pipeline.reproduce_stage(repo, stage, lambda line: print(line, flush=True), force)
    return 0


def run_register(repo: Path) -> int:
    """Apply the gate to the evaluated model; exit 1 when it is rejected."""
    from tasks.config import load_params
    from tasks.promotion import gate_and_register

    params = load_params(repo / "params.yaml")
    outcome = gate_and_register(
        repo, params.register, params.base.classes, params.evaluate.threshold
    )
    if outcome.decision is not None:
        print(f"{outcome.decision.action}: {'; '.join(outcome.decision.reasons)}")
    print(f"version: {outcome.version}")
    return 0 if outcome.version else 1


def run_flow(repo: Path, push: bool) -> int:
    """Run the Prefect flow and report the version it left."""
    from flows.training_pipeline import training_pipeline

    result = training_pipeline(repo=str(repo), push=push)
    version = result["version"]
    print(
        f"{result['action']}: registered version: {version}"
        if version
        else "no version registered"
    )
    return 0 if version else 1


def run_serve(repo: Path, start_server: bool, port: int) -> int:
    """Serve the retraining deployment until Ctrl-C."""
    from flows.serve import serve_project

    return serve_project(repo, start_server, port)


def run_predict(repo: Path, inputs: list[Path], model: str | None) -> int:
    """Write predictions as CSV on stdout; failures go to stderr."""
    from tasks.predict import collect_files, predict_files
    from tasks.registry import resolve_model

    model_path = resolve_model(repo, model_name(repo), model)
    predictions, failures = predict_files(model_path, collect_files(inputs))
    for failure in failures:
        print(f"{failure.path}: {failure.reason}", file=sys.stderr)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["path", "label", "probability"])
    for row in predictions:
        writer.writerow([row.path, row.label, f"{row.probability:.5f}"])
    return 0 if predictions else 1


def run_models(repo: Path) -> int:
    """Print one line per registered version with its stages and numbers."""
    from tasks.registry import locked_hashes, read_at, registered_versions

    name = model_name(repo)
    print("version,stages,accuracy,lateral_recall,roc_auc,dataset_md5,created_at")
    for info in registered_versions(repo, name):
        metrics = json.loads(read_at(repo, info.commit, "metrics/evaluation.json"))
        dataset = locked_hashes(repo, info.commit).get("data/prepared", "")
        print(
            f"{info.version},{'+'.join(info.stages) or '-'},{metrics['accuracy']},"
            f"{metrics['lateral_recall']},{metrics['roc_auc']},{dataset},"
            f"{info.created_at.isoformat(timespec='seconds')}"
        )
    return 0


def run_promote(repo: Path, version: str, stage: str) -> int:
    """Assign ``stage`` to ``version``."""
    from tasks.registry import assign_stage

    assign_stage(repo, model_name(repo), version, stage)
    print(f"{version} is now {stage}")
    return 0


def run_rollback(repo: Path) -> int:
    """Give prod back to the version that held it before."""
    from tasks.registry import rollback

    print(f"prod is now {rollback(repo, model_name(repo))}")
    return 0


def run_lineage(repo: Path, args: argparse.Namespace) -> int:
    """Print a model card and verify it, or list versions touching a patient/image."""
    from tasks import lineage
    from tasks.digests import file_sha256

    name = model_name(repo)
    if args.version:
        return _print_verified_card(repo, name, args.version)
    if args.patient:
        column, value, what = (
            "patient_hash",
            _patient_pseudonym(args.patient),
            "patient",
        )
    else:
        column, value, what = "sha256", file_sha256(args.image), "image"
    print("version,subset,images")
    hits = lineage.versions_containing(repo, name, column, value)
    for hit in hits:
        print(f"{hit['version']},{hit['subset']},{hit['images']}")
    if not hits:
        print(f"no registered version of {name} saw that {what}", file=sys.stderr)
    return 0 if hits else 1


def _print_verified_card(repo: Path, name: str, version: str) -> int:
    from tasks import lineage
    from tasks.registry import registered_versions

    commit = next(
        (v.commit for v in registered_versions(repo, name) if v.version == version),
        None,
    )
    if commit is None:
        raise LookupError(f"{name}@{version} is not registered")
    print(lineage.model_card_at(repo, commit))
    problems = lineage.verify_cached_outputs(
        repo, commit, ("models/model.keras", "data/prepared", "data/split")
    )
    for problem in problems:
        print(f"MISMATCH {problem}", file=sys.stderr)
    print(
        "verified: weights, data and split match dvc.lock"
        if not problems
        else f"{len(problems)} problem(s) found"
    )
    return 1 if problems else 0


def _patient_pseudonym(patient: str) -> str:
    from tasks.privacy import load_or_create_salt, pseudonymise, salt_file

    if not salt_file().is_file():
        raise FileNotFoundError(
            f"lineage: the project salt {salt_file()} is missing; patient lookups "
            "need the salt that ingest used"
        )
    return pseudonymise(patient, load_or_create_salt())


def dispatch(args: argparse.Namespace, repo: Path) -> int:
    """Call the function behind ``args.command``."""
    if args.command in pipeline.STAGES:
        return run_stage(repo, args.command, args.force)
    handlers = {
        "register": lambda: run_register(repo),
        "run": lambda: run_flow(repo, not args.no_push),
        "serve": lambda: run_serve(repo, args.start_server, args.port),
        "predict": lambda: run_predict(repo, args.inputs, args.model),
        "models": lambda: run_models(repo),
        "promote": lambda: run_promote(repo, args.version, args.stage),
        "rollback": lambda: run_rollback(repo),
        "lineage": lambda: run_lineage(repo, args),
    }
    return handlers[args.command]()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``laterality`` console script."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return dispatch(args, args.repo.resolve())
    except (FileNotFoundError, ValueError, LookupError, RuntimeError) as error:
        print(f"laterality {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
