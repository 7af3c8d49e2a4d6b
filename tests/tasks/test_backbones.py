"""Which weights a backbone needs, the offline rule, and the shipped file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tasks import backbones
from tasks.backbones import build_backbone, imagenet_file, resolve_weights
from tests.conftest import REPO_ROOT
from tests.tasks.tiny_models import SHIPPED_MOBILENET


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Keras cache and no way to download; return the cache folder."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(backbones, "can_reach_keras_storage", lambda: False)
    return tmp_path / "keras" / "models"


@pytest.mark.parametrize(
    ("architecture", "input_size", "expected"),
    [
        ("mobilenet", 224, "mobilenet_2_5_224_tf_no_top.h5"),
        ("mobilenet", 128, "mobilenet_2_5_128_tf_no_top.h5"),
        ("mobilenet", 96, "mobilenet_2_5_224_tf_no_top.h5"),  # Keras falls back
        ("vgg16", 224, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ],
)
def test_imagenet_file_names_the_file_keras_downloads(
    architecture, input_size, expected
):
    name, url = imagenet_file(architecture, input_size)
    assert name == expected
    assert url.startswith("https://storage.googleapis.com/")
    assert url.endswith(name)


def test_imagenet_file_simple_cnn_has_none():
    with pytest.raises(ValueError, match="expected one of"):
        imagenet_file("simple_cnn", 128)


@pytest.mark.parametrize("architecture", ["mobilenet", "vgg16"])
def test_resolve_weights_none_trains_from_scratch(architecture, offline):
    assert resolve_weights(architecture, "none", 224) is None


def test_resolve_weights_offline_imagenet_names_file_and_folder(offline: Path):
    with pytest.raises(FileNotFoundError) as raised:
        resolve_weights("mobilenet", "imagenet", 224)
    message = str(raised.value)
    assert "mobilenet_2_5_224_tf_no_top.h5" in message
    assert str(offline / "mobilenet_2_5_224_tf_no_top.h5") in message
    assert "storage.googleapis.com" in message
    assert "train.weights: data/weights/mobilenet_2_5_224_tf_no_top.h5" in message


def test_resolve_weights_offline_vgg16_has_no_shipped_hint(offline: Path):
    with pytest.raises(FileNotFoundError, match="vgg16_weights") as raised:
        resolve_weights("vgg16", "imagenet", 224)
    assert "ships" not in str(raised.value)


def test_resolve_weights_imagenet_in_keras_cache_needs_no_network(offline: Path):
    offline.mkdir(parents=True)
    (offline / "mobilenet_2_5_128_tf_no_top.h5").write_bytes(b"cached")
    assert resolve_weights("mobilenet", "imagenet", 128) == "imagenet"


def test_resolve_weights_imagenet_online_lets_keras_download(offline: Path):
    assert resolve_weights("vgg16", "imagenet", 224, reachable=lambda: True) == (
        "imagenet"
    )


def test_resolve_weights_local_file_is_returned(offline: Path):
    path = str(REPO_ROOT / SHIPPED_MOBILENET)
    assert resolve_weights("mobilenet", path, 224) == path


@pytest.mark.parametrize("weights", ["missing.h5", "data/weights/README.md"])
def test_resolve_weights_missing_or_wrong_file_names_the_param(weights, offline):
    with pytest.raises(FileNotFoundError, match="train.weights: expected") as raised:
        resolve_weights("mobilenet", weights, 224)
    assert weights in str(raised.value)


def test_resolve_weights_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ValueError, match="train.architecture: expected one of"):
        resolve_weights("resnet", "none", 224)


def test_resolve_weights_simple_cnn_ignores_weights_with_a_warning(
    caplog: pytest.LogCaptureFixture,
):
    with caplog.at_level(logging.WARNING):
        assert resolve_weights("simple_cnn", "imagenet", 128) is None
    assert "ignored" in caplog.text


def test_build_backbone_loads_the_shipped_imagenet_file():
    backbone = build_backbone("mobilenet", 64, str(REPO_ROOT / SHIPPED_MOBILENET))
    assert backbone.name == "backbone"
    assert backbone.output.shape[1:] == (2, 2, 256)
    assert backbone.count_params() == 218_544
