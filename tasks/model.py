"""Network definitions. Every model takes prepared 0-255 greyscale squares.

Resizing and scaling are layers of the model, not steps of the input pipeline,
so ``predict`` cannot apply a different preprocessing from training.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
from keras import layers

from tasks import atomic

ARCHITECTURES = ("simple_cnn",)


def build_simple_cnn(
    image_size: int, input_size: int, dropout: float, seed: int
) -> keras.Model:
    """Build the talk's small CNN with its output and loss made consistent.

    The talk paired ``Dense(2, sigmoid)`` with binary cross-entropy on one-hot
    labels, which scores two independent yes/no answers. Here one sigmoid unit
    gives P(lateral) and binary cross-entropy is the matching loss. ReLU layers
    start from He-normal weights, the initialisation that keeps their
    activations from shrinking or exploding with depth.
    """
    init = keras.initializers.HeNormal(seed=seed)
    inputs = keras.Input((image_size, image_size, 1), name="radiograph")
    x = layers.Resizing(input_size, input_size, name="resize")(inputs)
    x = layers.Rescaling(1.0 / 255, name="rescale")(x)
    for depth, filters in enumerate((16, 32, 64, 64)):
        x = layers.Conv2D(
            filters, 3, padding="same", activation="relu", kernel_initializer=init,
            name=f"conv{depth + 1}",
        )(x)
        x = layers.MaxPooling2D(name=f"pool{depth + 1}")(x)
    x = layers.Dropout(dropout / 2, seed=seed, name="dropout_features")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", kernel_initializer=init, name="dense")(x)
    x = layers.Dropout(dropout, seed=seed, name="dropout_dense")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_lateral")(x)
    return keras.Model(inputs, outputs, name="simple_cnn")


def build_model(
    architecture: str, image_size: int, input_size: int, dropout: float, seed: int
) -> keras.Model:
    """Build the network named by ``train.architecture``.

    Raises:
        ValueError: an architecture this project does not define.
    """
    if architecture == "simple_cnn":
        return build_simple_cnn(image_size, input_size, dropout, seed)
    raise ValueError(
        f"train.architecture: expected one of {list(ARCHITECTURES)}, "
        f"got '{architecture}'"
    )


def class_index_path(model_path: Path) -> Path:
    """Return where the class map of the model at ``model_path`` is kept."""
    return model_path.with_name("class_index.json")


def save_classifier(
    model: keras.Model, model_path: Path, classes: tuple[str, ...]
) -> None:
    """Save the model and its class map, each atomically."""
    with atomic.atomic_path(model_path, suffix=".keras") as temporary:
        model.save(temporary)
    atomic.write_json(
        class_index_path(model_path),
        {"classes": list(classes), "positive_class": classes[1]},
    )


def load_classifier(model_path: Path) -> tuple[keras.Model, tuple[str, ...]]:
    """Load a saved model (Keras safe mode) and the class names it predicts.

    Raises:
        FileNotFoundError: the model or its ``class_index.json`` is missing.
        ValueError: the file is not a loadable Keras model.
    """
    index_path = class_index_path(model_path)
    for path in (model_path, index_path):
        if not path.is_file():
            raise FileNotFoundError(f"model: expected {path} to exist")
    try:
        model = keras.models.load_model(model_path, safe_mode=True, compile=False)
    except Exception as error:  # Keras raises several types for a bad archive
        raise ValueError(f"{model_path}: not a loadable Keras model: {error}") from error
    classes = tuple(json.loads(index_path.read_text())["classes"])
    return model, classes
