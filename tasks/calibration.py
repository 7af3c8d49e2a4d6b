"""How far the model's probabilities can be taken at their word, and a fix.

Expected calibration error (ECE) is the gap between how sure the model says it
is and how often it is right, averaged over ten equal-width confidence bins
weighted by their image counts (Guo et al., 2017). With two views the top-label
confidence is at least 0.5, so only the upper five bins ever fill.

Temperature scaling divides the model's logit by one number T fitted on the
validation subset; T > 1 softens over-confident probabilities, T < 1 sharpens
timid ones, and no prediction changes side of 0.5, so accuracy, recall and ROC
AUC are untouched. A validation set that the model separates perfectly has no
finite best T (the likelihood keeps rising as T shrinks), so the fit maximises
the likelihood times a standard normal prior on log T: the data pull T as far
as they can justify and the prior stops the pull at a finite value.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar

ECE_BINS = 10
_EPSILON = 1e-7  # float32 sigmoid outputs saturate near this distance from 0 and 1
_LOG_T_BOUND = 5.0  # search T in [e^-5, e^5]; the prior keeps it far inside


def expected_calibration_error(
    labels: np.ndarray, p_positive: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Return the count-weighted mean |accuracy - confidence| over confidence bins.

    Raises:
        ValueError: ``labels`` and ``p_positive`` differ in length or are empty.
    """
    labels, p_positive = np.asarray(labels), np.asarray(p_positive, dtype=np.float64)
    if len(labels) != len(p_positive) or len(labels) == 0:
        raise ValueError(
            f"labels, p_positive: expected equal non-zero lengths, "
            f"got {len(labels)} and {len(p_positive)}"
        )
    predicted = p_positive >= 0.5
    confidence = np.where(predicted, p_positive, 1.0 - p_positive)
    correct = predicted == labels.astype(bool)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gap = 0.0
    for index in np.unique(which):
        members = which == index
        gap += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return float(gap / len(labels))


def to_logits(p_positive: np.ndarray) -> np.ndarray:
    """Invert the sigmoid, clipping probabilities a float32 output cannot resolve."""
    p = np.clip(np.asarray(p_positive, dtype=np.float64), _EPSILON, 1 - _EPSILON)
    return np.log(p) - np.log1p(-p)


def apply_temperature(p_positive: np.ndarray, temperature: float) -> np.ndarray:
    """Return sigmoid(logit(p) / T); T = 1 returns ``p_positive`` unchanged.

    Raises:
        ValueError: ``temperature`` is not a positive finite number.
    """
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature: expected a positive number, got {temperature}")
    if temperature == 1.0:
        return np.asarray(p_positive)
    scaled = 1.0 / (1.0 + np.exp(-to_logits(p_positive) / temperature))
    return scaled.astype(np.asarray(p_positive).dtype)


def fit_temperature(labels: np.ndarray, p_positive: np.ndarray) -> float:
    """Return the T that maximises validation likelihood under a N(0, 1) log-T prior."""
    logits, truth = to_logits(p_positive), np.asarray(labels, dtype=np.float64)

    def penalised_nll(log_t: float) -> float:
        z = logits / math.exp(log_t)
        nll = np.sum(np.logaddexp(0.0, z) - truth * z)  # -log likelihood, stable
        return float(nll + 0.5 * log_t**2)

    best = minimize_scalar(
        penalised_nll, bounds=(-_LOG_T_BOUND, _LOG_T_BOUND), method="bounded"
    )
    return round(math.exp(best.x), 4)


def calibrate(labels: np.ndarray, p_positive: np.ndarray) -> dict[str, float]:
    """Fit T on validation and keep it only when it lowers validation ECE.

    Returns:
        ``temperature`` (1.0 when scaling did not help), the validation ECE
        before and after, and the T that was fitted.
    """
    before = expected_calibration_error(labels, p_positive)
    fitted = fit_temperature(labels, p_positive)
    after = expected_calibration_error(labels, apply_temperature(p_positive, fitted))
    return {
        "temperature": fitted if after < before else 1.0,
        "fitted_temperature": fitted,
        "validation_ece_uncalibrated": round(before, 5),
        "validation_ece": round(min(after, before), 5),
    }
