"""Network shapes, in-model preprocessing, augmentation and saved classifiers."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from tasks.augmentation import augmentation_block
from tasks.model import (
    ModelSpec,
    build_model,
    classification_head,
    feature_extractor,
    load_classifier,
    save_classifier,
    unfreeze_top_layers,
)
from tests.conftest import REPO_ROOT
from tests.tasks.tiny_models import SHIPPED_MOBILENET

CLASSES = ("frontal", "lateral")


def _spec(architecture: str = "simple_cnn", **changes: object) -> ModelSpec:
    values = {"image_size": 64, "input_size": 32, "dropout": 0.2, "seed": 3}
    return ModelSpec(architecture, **{**values, **changes})


def _radiographs(count: int = 2, size: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, size, size, 1)).astype(np.float32)


@pytest.mark.parametrize("architecture", ["simple_cnn", "mobilenet", "vgg16"])
def test_build_model_takes_prepared_radiographs_and_returns_p_lateral(architecture):
    model = build_model(_spec(architecture))
    assert model.input_shape == (None, 64, 64, 1)
    assert model.output_shape == (None, 1)
    p = model.predict(_radiographs(), verbose=0)
    assert np.all((p >= 0) & (p <= 1))


def test_build_model_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ValueError, match="train.architecture: expected one of"):
        build_model(_spec("resnet"))


@pytest.mark.parametrize(
    ("architecture", "preprocess_input"),
    [
        ("mobilenet", keras.applications.mobilenet.preprocess_input),
        ("vgg16", keras.applications.vgg16.preprocess_input),
    ],
)
def test_build_model_applies_the_backbones_own_preprocess_input(
    architecture, preprocess_input
):
    model = build_model(_spec(architecture, input_size=64))  # no resampling
    preprocessed = keras.Model(model.input, model.get_layer("preprocess").output)
    grey = _radiographs()
    expected = preprocess_input(np.repeat(grey, 3, axis=-1))
    np.testing.assert_allclose(
        preprocessed.predict(grey, verbose=0), expected, atol=1e-4
    )


def test_build_model_backbone_starts_frozen():
    model = build_model(_spec("mobilenet"))
    assert not model.get_layer("backbone").trainable
    assert [w.name for w in model.trainable_weights] == ["kernel", "bias"]


def test_augmentation_block_changes_images_only_in_training():
    block = augmentation_block(horizontal_flip=True, seed=1)
    images = _radiographs(4, 32)
    assert np.array_equal(np.asarray(block(images, training=False)), images)
    assert not np.allclose(np.asarray(block(images, training=True)), images)


def test_build_model_with_augmentation_predicts_deterministically():
    augmented = build_model(_spec(augment=True, horizontal_flip=True))
    plain = build_model(_spec())
    plain.set_weights(augmented.get_weights())
    images = _radiographs(3)
    first = augmented.predict(images, verbose=0)
    assert np.array_equal(first, augmented.predict(images, verbose=0))
    np.testing.assert_allclose(first, plain.predict(images, verbose=0), atol=1e-6)


def test_feature_extractor_and_head_compose_to_the_model():
    model = build_model(_spec("mobilenet", weights=str(REPO_ROOT / SHIPPED_MOBILENET)))
    images = _radiographs(3)
    features = feature_extractor(model).predict(images, verbose=0)
    composed = classification_head(model).predict(features, verbose=0)
    assert features.shape == (3, 256)
    np.testing.assert_allclose(composed, model.predict(images, verbose=0), atol=1e-6)


def test_unfreeze_top_layers_leaves_lower_layers_and_batch_norms_frozen():
    model = build_model(_spec("mobilenet"))
    trained = unfreeze_top_layers(model, 12)
    layers = model.get_layer("backbone").layers
    top = [layer.name for layer in layers[-12:] if layer.trainable]
    assert not any(layer.trainable for layer in layers[:-12])
    assert top == [
        "conv_dw_12",
        "conv_dw_12_relu",
        "conv_pw_12",
        "conv_pw_12_relu",
        "conv_dw_13",
        "conv_dw_13_relu",
        "conv_pw_13",
        "conv_pw_13_relu",
    ]
    assert trained == 4  # the four convolutions; ReLUs hold no weights


def test_unfreeze_top_layers_keeps_fitting_in_inference_mode():
    """Fine-tuning must see the features prediction sees, not batch statistics.

    ImageNet weights, since a random backbone's top is dead enough to hide it.
    """
    spec = _spec("mobilenet", dropout=0.0, weights=str(SHIPPED_MOBILENET))
    model = build_model(spec)
    unfreeze_top_layers(model, 12)
    images = _radiographs()
    np.testing.assert_allclose(
        model(images, training=True), model(images, training=False), atol=1e-6
    )


def test_save_classifier_round_trip_keeps_predictions_and_temperature(tmp_path: Path):
    model = build_model(_spec(augment=True))
    path = tmp_path / "models" / "model.keras"
    save_classifier(model, path, CLASSES, {"temperature": 2.0})

    classifier = load_classifier(path)

    images = _radiographs()
    raw = model.predict(images, verbose=0)[:, 0]
    np.testing.assert_allclose(
        classifier.model.predict(images, verbose=0)[:, 0], raw, atol=1e-6
    )
    assert classifier.classes == CLASSES
    assert classifier.temperature == 2.0
    softened = classifier.predict_positive(images)
    assert np.all(np.abs(softened - 0.5) <= np.abs(raw - 0.5) + 1e-6)
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "class_index.json",
        "model.keras",
    ]


def test_load_classifier_without_calibration_uses_temperature_one(tmp_path: Path):
    path = tmp_path / "model.keras"
    save_classifier(build_model(_spec()), path, CLASSES)
    assert "calibration" not in json.loads((tmp_path / "class_index.json").read_text())
    assert load_classifier(path).temperature == 1.0


def test_load_classifier_missing_class_index_names_the_file(tmp_path: Path):
    path = tmp_path / "model.keras"
    build_model(_spec()).save(path)
    with pytest.raises(FileNotFoundError, match="class_index.json"):
        load_classifier(path)


def test_load_classifier_corrupt_file_is_a_value_error(tmp_path: Path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"not a zip archive")
    (tmp_path / "class_index.json").write_text('{"classes": ["frontal", "lateral"]}')
    with pytest.raises(ValueError, match="not a loadable Keras model"):
        load_classifier(path)
