"""Read ``params.yaml`` once, at the edge, into small typed settings.

Stage entry points and flows call :func:`load_params`; the step functions below
them receive plain values and never read configuration themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

PARAMS_FILE = Path("params.yaml")
Section = TypeVar("Section")


@dataclass(frozen=True)
class BaseParams:
    seed: int
    classes: tuple[str, ...]
    image_size: int


@dataclass(frozen=True)
class IngestParams:
    source: str
    root: str
    min_side: int
    max_pixels: int
    workers: int
    min_per_class: int


@dataclass(frozen=True)
class ValidateParams:
    max_class_share_change: float | None
    max_intensity_shift: float | None
    max_image_count_drop: float | None
    max_reject_fraction: float | None
    max_duplicate_fraction: float | None


@dataclass(frozen=True)
class SplitParams:
    validation_fraction: float
    test_fraction: float


@dataclass(frozen=True)
class TrainParams:
    architecture: str
    input_size: int
    batch_size: int
    epochs: int
    learning_rate: float
    dropout: float
    early_stopping_patience: int
    reduce_lr_patience: int
    reduce_lr_factor: float
    weights: str
    augment: bool
    horizontal_flip: bool
    fine_tune_layers: int
    fine_tune_epochs: int
    fine_tune_learning_rate: float


@dataclass(frozen=True)
class EvaluateParams:
    threshold: float
    grid_images: int


@dataclass(frozen=True)
class RegisterParams:
    model_name: str
    min_accuracy: float
    min_lateral_recall: float
    max_regression: float


@dataclass(frozen=True)
class ScheduleParams:
    cron: str
    timezone: str


@dataclass(frozen=True)
class Params:
    base: BaseParams
    ingest: IngestParams
    validate: ValidateParams
    split: SplitParams
    train: TrainParams
    evaluate: EvaluateParams
    register: RegisterParams
    schedule: ScheduleParams


def _section(kind: type[Section], raw: dict[str, Any], name: str) -> Section:
    values = raw.get(name)
    if not isinstance(values, dict):
        raise ValueError(f"{PARAMS_FILE}: expected a mapping under '{name}'")
    expected = {field.name for field in fields(kind)}
    missing, unknown = expected - values.keys(), values.keys() - expected
    if missing or unknown:
        raise ValueError(
            f"{PARAMS_FILE}: section '{name}' expected keys {sorted(expected)}; "
            f"missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    if "classes" in values:
        values = {**values, "classes": tuple(values["classes"])}
    return kind(**values)


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Parse ``path`` into :class:`Params`, naming any missing or unknown key."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    params = Params(
        base=_section(BaseParams, raw, "base"),
        ingest=_section(IngestParams, raw, "ingest"),
        validate=_section(ValidateParams, raw, "validate"),
        split=_section(SplitParams, raw, "split"),
        train=_section(TrainParams, raw, "train"),
        evaluate=_section(EvaluateParams, raw, "evaluate"),
        register=_section(RegisterParams, raw, "register"),
        schedule=_section(ScheduleParams, raw, "schedule"),
    )
    if len(params.base.classes) != 2:
        raise ValueError(
            f"{path}: base.classes must name two views, got {list(params.base.classes)}"
        )
    return params
