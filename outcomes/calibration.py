"""Calibration judged against chance: the error a calibrated model shows at a sample size, and logistic
recalibration (slope and intercept) with Wald 95% intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from outcomes.evaluate import Interval, as_labels, as_probabilities, expected_calibration_error

__all__ = ["Recalibration", "calibration_chance_bound", "logistic_recalibration"]

FloatArray = npt.NDArray[np.float64]
NAN = float("nan")
_Z95 = 1.959963984540054
_EPS = 1e-6


def calibration_chance_bound(
    p: npt.ArrayLike, *, seed: int, draws: int = 500, quantile: float = 0.95, bins: int = 10
) -> float:
    """The ``quantile`` of the calibration error a perfectly calibrated model shows on these predictions.

    Outcomes are redrawn from the probabilities themselves, so the bound is that of this sample size and this
    spread of predictions: a calibrated model on 800 cases shows about 0.03 by noise alone, on 20,000 about 0.006.
    """
    probs = as_probabilities(p)
    if probs.size == 0:
        return NAN
    rng = np.random.default_rng(seed)
    null = [expected_calibration_error(rng.uniform(size=probs.size) < probs, probs, bins=bins) for _ in range(draws)]
    return float(np.quantile(null, quantile))


@dataclass(frozen=True, slots=True)
class Recalibration:
    """Logistic recalibration, logit P(y) = intercept + slope * logit(p): slope 1 and intercept 0 when calibrated.

    ``slope`` comes from the two-parameter fit (below 1: over-confident, too high at the top and too low at the
    bottom); ``intercept`` is calibration-in-the-large, fitted with the slope held at 1 (above 0: too low overall).
    """

    slope: Interval
    intercept: Interval
    n: int


def _logit(p: FloatArray) -> FloatArray:
    clipped = np.clip(p, _EPS, 1 - _EPS)
    out: FloatArray = np.log(clipped / (1 - clipped))
    return out


def _newton(x: FloatArray, y: FloatArray, offset: FloatArray, *, steps: int = 50) -> tuple[FloatArray, FloatArray]:
    """Maximum-likelihood logistic regression of y on the columns of x (with an offset): coefficients and their
    standard errors from the inverse Fisher information."""
    beta = np.zeros(x.shape[1])
    info = np.eye(x.shape[1])
    for _ in range(steps):
        mu = 1.0 / (1.0 + np.exp(-(offset + x @ beta)))
        weight = mu * (1 - mu)
        info = x.T @ (x * weight[:, None])
        step = np.linalg.solve(info, x.T @ (y - mu))
        beta = beta + step
        if np.abs(step).max() < 1e-10:
            break
    return beta, np.sqrt(np.diag(np.linalg.inv(info)))


def _wald(value: float, se: float) -> Interval:
    return Interval(value, value - _Z95 * se, value + _Z95 * se)


def logistic_recalibration(y: npt.ArrayLike, p: npt.ArrayLike) -> Recalibration:
    """Slope and intercept of logistic recalibration with Wald 95% intervals; NaN where they are undefined (a
    single class, or every case given the same probability)."""
    labels, probs = as_labels(y).astype(np.float64), as_probabilities(p)
    n = labels.size
    undefined = Recalibration(Interval(NAN, NAN, NAN), Interval(NAN, NAN, NAN), n)
    if n < 3 or labels.min() == labels.max():
        return undefined
    score = _logit(probs)
    ones = np.ones((n, 1))
    try:
        (intercept,), (intercept_se,) = _newton(ones, labels, score)
        if np.ptp(score) < 1e-9:
            return Recalibration(Interval(NAN, NAN, NAN), _wald(float(intercept), float(intercept_se)), n)
        (_, slope), (_, slope_se) = _newton(np.column_stack([ones, score]), labels, np.zeros(n))
    except np.linalg.LinAlgError:
        return undefined
    return Recalibration(_wald(float(slope), float(slope_se)), _wald(float(intercept), float(intercept_se)), n)
