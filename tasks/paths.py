"""Where a model's companion files live, without importing TensorFlow.

The registry, the change check and the CLI need these rules but not Keras;
keeping them here lets ``laterality models`` and an unchanged-data retraining
run skip the several seconds that importing TensorFlow costs on two cores.
"""

from __future__ import annotations

from pathlib import Path

MODEL_FILE = Path("models/model.keras")  # the DVC out that GTO registers


def class_index_path(model_path: Path) -> Path:
    """Return where the class map and calibration of ``model_path`` are kept."""
    return model_path.with_name("class_index.json")
