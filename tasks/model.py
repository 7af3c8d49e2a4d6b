"""Network definitions. Every model takes prepared 0-255 greyscale squares.

Resizing, augmentation, grey-to-RGB and each backbone's own scaling are layers
of the model, not steps of the input pipeline, so ``predict`` cannot apply a
different preprocessing from training. Augmentation layers act only when Keras
calls the model with ``training=True``, that is inside ``fit``; validation,
test and ``predict`` see the radiograph as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tasks import atomic
from tasks.augmentation import augmentation_block
from tasks.backbones import ARCHITECTURES, build_backbone, preprocessing_layers
from tasks.calibration import apply_temperature
from tasks.paths import class_index_path


@dataclass(frozen=True)
class ModelSpec:
    """What :func:`build_model` needs, taken from the ``base`` and ``train`` params.

    Args:
        image_size: side of the prepared radiograph, the model's input.
        input_size: side the network works at, after the model's own resizing.
        weights: what Keras' ``weights=`` receives (``resolve_weights``).
    """

    architecture: str
    image_size: int
    input_size: int
    dropout: float
    seed: int
    weights: str | None = None
    augment: bool = False
    horizontal_flip: bool = False


def _resize_and_augment(
    inputs: keras.KerasTensor, spec: ModelSpec
) -> keras.KerasTensor:
    x = layers.Resizing(spec.input_size, spec.input_size, name="resize")(inputs)
    if spec.augment:
        x = augmentation_block(spec.horizontal_flip, spec.seed)(x)
    return x


def build_simple_cnn(spec: ModelSpec) -> keras.Model:
    """Build the talk's small CNN with its output and loss made consistent.

    The talk paired ``Dense(2, sigmoid)`` with binary cross-entropy on one-hot
    labels, which scores two independent yes/no answers. Here one sigmoid unit
    gives P(lateral) and binary cross-entropy is the matching loss. ReLU layers
    start from He-normal weights, the initialisation that keeps their
    activations from shrinking or exploding with depth.
    """
    init = keras.initializers.HeNormal(seed=spec.seed)
    inputs = keras.Input((spec.image_size, spec.image_size, 1), name="radiograph")
    x = layers.Rescaling(1.0 / 255, name="rescale")(_resize_and_augment(inputs, spec))
    for depth, filters in enumerate((16, 32, 64, 64)):
        x = layers.Conv2D(
            filters,
            3,
            padding="same",
            activation="relu",
            kernel_initializer=init,
            name=f"conv{depth + 1}",
        )(x)
        x = layers.MaxPooling2D(name=f"pool{depth + 1}")(x)
    x = layers.Dropout(spec.dropout / 2, seed=spec.seed, name="dropout_features")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", kernel_initializer=init, name="dense")(x)
    x = layers.Dropout(spec.dropout, seed=spec.seed, name="dropout_dense")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_lateral")(x)
    return keras.Model(inputs, outputs, name="simple_cnn")


def build_transfer_model(spec: ModelSpec) -> keras.Model:
    """Put a new one-unit head on a frozen pretrained backbone.

    The backbone runs with ``training=False`` so that its batch-norm statistics
    stay those learnt on ImageNet, also when its top layers are fine-tuned.
    """
    inputs = keras.Input((spec.image_size, spec.image_size, 1), name="radiograph")
    x = _resize_and_augment(inputs, spec)
    x = layers.Concatenate(name="grey_to_rgb")([x, x, x])
    for layer in preprocessing_layers(spec.architecture):
        x = layer(x)
    backbone = build_backbone(spec.architecture, spec.input_size, spec.weights)
    backbone.trainable = False
    x = backbone(x, training=False)
    x = layers.GlobalAveragePooling2D(name="features")(x)
    x = layers.Dropout(spec.dropout, seed=spec.seed, name="dropout_head")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_lateral")(x)
    return keras.Model(inputs, outputs, name=f"{spec.architecture}_classifier")


def build_model(spec: ModelSpec) -> keras.Model:
    """Build the network named by ``train.architecture``.

    Raises:
        ValueError: an architecture this project does not define.
    """
    if spec.architecture == "simple_cnn":
        return build_simple_cnn(spec)
    if spec.architecture in ARCHITECTURES:
        return build_transfer_model(spec)
    raise ValueError(
        f"train.architecture: expected one of {list(ARCHITECTURES)}, "
        f"got '{spec.architecture}'"
    )


def feature_extractor(model: keras.Model) -> keras.Model:
    """Return the part of a transfer model up to its pooled backbone features."""
    return keras.Model(model.input, model.get_layer("features").output)


def classification_head(model: keras.Model) -> keras.Model:
    """Return the head of a transfer model as a model of its own, sharing weights.

    Training this on cached features trains the full model's head.
    """
    features = keras.Input(model.get_layer("features").output.shape[1:])
    x = model.get_layer("dropout_head")(features)
    return keras.Model(features, model.get_layer("p_lateral")(x), name="head")


def unfreeze_top_layers(model: keras.Model, count: int) -> int:
    """Unfreeze the top ``count`` backbone layers but their batch norms.

    Keras 3 runs a trainable ``BatchNormalization`` on batch statistics while
    fitting, whatever ``training=False`` the backbone was called with, and
    moves its ImageNet statistics towards those of 16 radiographs. A frozen
    one stays in inference mode, so fine-tuning sees what prediction sees.

    Returns:
        How many backbone layers now train (convolutions, not batch norms).
    """
    backbone = model.get_layer("backbone")
    backbone.trainable = True
    for position, layer in enumerate(backbone.layers):
        in_top = position >= len(backbone.layers) - count
        is_norm = isinstance(layer, layers.BatchNormalization)
        layer.trainable = in_top and not is_norm
    return sum(1 for layer in backbone.layers if layer.trainable and layer.weights)


@dataclass(frozen=True)
class Classifier:
    """A loaded model with the class names it predicts and its temperature."""

    model: keras.Model
    classes: tuple[str, ...]
    temperature: float = 1.0

    def predict_positive(
        self, inputs: np.ndarray | tf.data.Dataset, batch_size: int = 32
    ) -> np.ndarray:
        """Return calibrated P(second class) for each radiograph in ``inputs``."""
        size = batch_size if isinstance(inputs, np.ndarray) else None
        raw = self.model.predict(inputs, batch_size=size, verbose=0)[:, 0]
        return apply_temperature(raw, self.temperature)


def save_classifier(
    model: keras.Model,
    model_path: Path,
    classes: tuple[str, ...],
    calibration: dict[str, float] | None = None,
) -> None:
    """Save the model, then its class map and calibration, each atomically.

    The calibration lives in ``class_index.json`` because that file already
    travels with every copy of the model (DVC outs, the registry cache).
    """
    with atomic.atomic_path(model_path, suffix=".keras") as temporary:
        model.save(temporary)
    index = {"classes": list(classes), "positive_class": classes[1]}
    if calibration is not None:
        index["calibration"] = calibration
    atomic.write_json(class_index_path(model_path), index)


def load_classifier(model_path: Path) -> Classifier:
    """Load a saved model (Keras safe mode), its class names and temperature.

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
        message = f"{model_path}: not a loadable Keras model: {error}"
        raise ValueError(message) from error
    index = json.loads(index_path.read_text())
    temperature = float(index.get("calibration", {}).get("temperature", 1.0))
    return Classifier(model, tuple(index["classes"]), temperature)
