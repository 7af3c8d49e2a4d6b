"""Pretrained backbones: where their weights come from, and how they see an image.

``train.weights`` is ``imagenet`` (Keras downloads the file once into its
cache), a local ``.h5`` path, or ``none``. Which file is needed, and whether it
can be had, is settled by :func:`resolve_weights` before any data is read, so
an offline machine fails in its first second with the file's name and where to
put it, not after an ingest and a split.

Each backbone gets a radiograph as three identical channels and the scaling its
own ``preprocess_input`` applies, written as layers so that the saved model
carries it into ``predict``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

import keras
from keras import layers

log = logging.getLogger(__name__)

ARCHITECTURES = ("simple_cnn", "mobilenet", "vgg16")
MOBILENET_ALPHA = 0.25  # the width of the shipped file; 2.1 MB, 0.2 M parameters
SHIPPED_WEIGHTS = Path("data/weights/mobilenet_2_5_224_tf_no_top.h5")
KERAS_STORAGE = "storage.googleapis.com"
_KERAS_URL = f"https://{KERAS_STORAGE}/tensorflow/keras-applications"
# Per-channel means (blue, green, red) that VGG16's "caffe" preprocessing
# subtracts; a grey image has equal channels, so its BGR reversal changes nothing.
_VGG16_MEANS = (103.939, 116.779, 123.68)


def imagenet_file(architecture: str, input_size: int) -> tuple[str, str]:
    """Return the file name and download URL Keras uses for ImageNet weights.

    Raises:
        ValueError: ``architecture`` has no ImageNet weights.
    """
    if architecture == "mobilenet":
        rows = input_size if input_size in (128, 160, 192, 224) else 224
        name = f"mobilenet_2_5_{rows}_tf_no_top.h5"
        return name, f"{_KERAS_URL}/mobilenet/{name}"
    if architecture == "vgg16":
        name = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
        return name, f"{_KERAS_URL}/vgg16/{name}"
    raise ValueError(
        f"train.architecture: expected one of ['mobilenet', 'vgg16'] for "
        f"ImageNet weights, got '{architecture}'"
    )


def keras_cache_dirs() -> list[Path]:
    """Return the folders where Keras looks for downloaded weights, in order."""
    home = os.environ.get("KERAS_HOME") or str(Path("~").expanduser() / ".keras")
    return [Path(home) / "models", Path("/tmp/.keras/models")]


def can_reach_keras_storage(timeout: float = 3.0) -> bool:
    """Say whether Keras' download host answers on HTTPS within ``timeout`` s."""
    try:
        with socket.create_connection((KERAS_STORAGE, 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_weights(
    architecture: str,
    weights: str,
    input_size: int,
    reachable: Callable[[], bool] | None = None,
) -> str | None:
    """Check ``train.weights`` and return what to pass as Keras' ``weights=``.

    Args:
        reachable: says whether the download host can be reached (default
            :func:`can_reach_keras_storage`); asked only when ``imagenet``
            weights are not in the Keras cache.

    Raises:
        ValueError: an unknown architecture.
        FileNotFoundError: a missing local file, or ``imagenet`` offline
            without the cached file; the message names the file and folder.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"train.architecture: expected one of {list(ARCHITECTURES)}, "
            f"got '{architecture}'"
        )
    if weights == "none":
        return None
    if architecture == "simple_cnn":
        log.warning(
            "train.weights '%s' ignored: simple_cnn trains from scratch", weights
        )
        return None
    if weights == "imagenet":
        return _check_imagenet(
            architecture, input_size, reachable or can_reach_keras_storage
        )
    path = Path(weights)
    if path.suffix != ".h5" or not path.is_file():
        raise FileNotFoundError(
            f"train.weights: expected 'imagenet', 'none' or an existing .h5 file, "
            f"got '{weights}'"
        )
    return str(path)


def _check_imagenet(
    architecture: str, input_size: int, reachable: Callable[[], bool]
) -> str:
    name, url = imagenet_file(architecture, input_size)
    folders = keras_cache_dirs()
    if any((folder / name).is_file() for folder in folders) or reachable():
        return "imagenet"
    hint = (
        f" This repository ships that file: set train.weights: {SHIPPED_WEIGHTS}."
        if name == SHIPPED_WEIGHTS.name
        else ""
    )
    raise FileNotFoundError(
        f"train.weights: 'imagenet' needs {name}, which is not in {folders[0]} "
        f"and cannot be downloaded ({KERAS_STORAGE} is unreachable). Fetch {url} "
        f"on a connected machine and copy it to {folders[0] / name}, or set "
        f"train.weights to a local .h5 path.{hint}"
    )


def build_backbone(
    architecture: str, input_size: int, weights: str | None
) -> keras.Model:
    """Return the convolutional part of ``architecture``, without its top."""
    shape = (input_size, input_size, 3)
    if architecture == "mobilenet":
        return keras.applications.MobileNet(
            input_shape=shape,
            alpha=MOBILENET_ALPHA,
            include_top=False,
            weights=weights,
            name="backbone",
        )
    if architecture == "vgg16":
        return keras.applications.VGG16(
            input_shape=shape, include_top=False, weights=weights, name="backbone"
        )
    raise ValueError(
        f"architecture: expected 'mobilenet' or 'vgg16' for a backbone, "
        f"got '{architecture}'"
    )


def preprocessing_layers(architecture: str) -> list[keras.layers.Layer]:
    """Return layers equal to the backbone's ``preprocess_input`` on 0-255 RGB."""
    if architecture == "mobilenet":  # "tf" mode: scale to [-1, 1]
        return [layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")]
    if architecture == "vgg16":  # "caffe" mode: subtract the ImageNet means
        return [
            layers.Normalization(
                mean=list(_VGG16_MEANS), variance=[1.0, 1.0, 1.0], name="preprocess"
            )
        ]
    raise ValueError(
        f"architecture: expected 'mobilenet' or 'vgg16', got '{architecture}'"
    )
