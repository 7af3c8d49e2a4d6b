"""Expected calibration error and temperature scaling on known numbers."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.calibration import (
    apply_temperature,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    to_logits,
)


@pytest.mark.parametrize(
    ("labels", "p_positive", "expected"),
    [
        ([0, 1, 1, 0], [0.0, 1.0, 1.0, 0.0], 0.0),  # sure and right
        ([1, 1, 0, 0], [0.8, 0.8, 0.2, 0.2], 0.2),  # right, 80 % sure
        ([1, 0, 1, 0], [0.9, 0.9, 0.1, 0.1], 0.4),  # half right, 90 % sure
        ([1, 1], [0.55, 0.95], 0.25),  # two bins: |1-.55|/2 + |1-.95|/2
    ],
)
def test_expected_calibration_error_known_values(labels, p_positive, expected):
    ece = expected_calibration_error(np.array(labels), np.array(p_positive))
    assert ece == pytest.approx(expected)


def test_expected_calibration_error_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="equal non-zero lengths, got 2 and 3"):
        expected_calibration_error(np.array([0, 1]), np.array([0.1, 0.2, 0.3]))


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_apply_temperature_keeps_each_prediction_on_its_side(temperature):
    p = np.array([0.01, 0.3, 0.49, 0.51, 0.8, 0.999], dtype=np.float32)
    scaled = apply_temperature(p, temperature)
    assert np.array_equal(scaled >= 0.5, p >= 0.5)
    assert scaled.dtype == np.float32
    if temperature > 1:  # softer: closer to 0.5
        assert np.all(np.abs(scaled - 0.5) <= np.abs(p - 0.5))


def test_apply_temperature_one_returns_probabilities_unchanged():
    p = np.array([0.2, 0.7], dtype=np.float32)
    assert apply_temperature(p, 1.0) is p


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_apply_temperature_rejects_non_positive_values(temperature):
    with pytest.raises(ValueError, match="temperature: expected a positive number"):
        apply_temperature(np.array([0.5]), temperature)


def test_to_logits_inverts_the_sigmoid():
    z = np.array([-4.0, -0.5, 0.0, 2.0])
    assert to_logits(1 / (1 + np.exp(-z))) == pytest.approx(z)


def test_fit_temperature_recovers_the_temperature_of_overconfident_scores():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 4000)
    labels = rng.random(4000) < 1 / (1 + np.exp(-true_logits))
    overconfident = 1 / (1 + np.exp(-3 * true_logits))  # T = 3 undoes it
    assert fit_temperature(labels, overconfident) == pytest.approx(3.0, rel=0.1)


def test_fit_temperature_stays_finite_when_validation_is_separable():
    labels = np.array([0, 0, 0, 1, 1])
    t = fit_temperature(labels, np.array([0.1, 0.2, 0.05, 0.9, 0.85]))
    assert 0.1 < t < 1.0  # sharpens, but the prior stops it


def test_calibrate_keeps_temperature_one_when_scaling_does_not_help():
    labels = np.array([0, 1, 0, 1])
    result = calibrate(labels, np.array([0.0, 1.0, 0.0, 1.0]))
    assert result["temperature"] == 1.0
    assert result["validation_ece"] == result["validation_ece_uncalibrated"] == 0.0


def test_calibrate_lowers_validation_ece_of_overconfident_scores():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 1.5, 300)
    labels = rng.random(300) < 1 / (1 + np.exp(-true_logits))
    result = calibrate(labels, 1 / (1 + np.exp(-4 * true_logits)))
    assert result["temperature"] > 2
    assert result["validation_ece"] < result["validation_ece_uncalibrated"]
