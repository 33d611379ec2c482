"""Calibration judged against chance: the error a calibrated model shows at a sample size, and logistic
recalibration (slope and intercept) with Wald 95% intervals."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from outcomes.evaluate import Interval, as_labels, as_probabilities

__all__ = ["Recalibration", "calibration_chance_bound", "chance_draws_for", "logistic_recalibration"]

FloatArray = npt.NDArray[np.float64]
NAN = float("nan")
_EPS = 1e-6
_CHUNK_CELLS = 4_000_000  # redrawn outcomes held at once (draws x cases)


def calibration_chance_bound(
    p: npt.ArrayLike, *, seed: int, draws: int = 500, quantile: float = 0.95, bins: int = 10
) -> float:
    """The ``quantile`` of the calibration error a perfectly calibrated model shows on these predictions.

    Outcomes are redrawn from the probabilities themselves, so the bound is that of this sample size and this
    spread of predictions: a calibrated model on 800 cases shows about 0.03 by noise alone, on 20,000 about 0.006.
    A quantile far in the tail needs enough draws beyond it (``chance_draws_for``).
    """
    probs = as_probabilities(p)
    if probs.size == 0:
        return NAN
    rng = np.random.default_rng(seed)
    # The error of every draw at once: each bin's sum of (outcome - probability), over the cases' bins.
    one_hot = np.zeros((probs.size, bins))
    one_hot[np.arange(probs.size), np.minimum(np.floor(probs * bins), bins - 1).astype(np.intp)] = 1.0
    expected = probs @ one_hot
    chunk = max(1, _CHUNK_CELLS // probs.size)
    null = []
    for done in range(0, draws, chunk):
        outcomes = rng.uniform(size=(min(chunk, draws - done), probs.size)) < probs
        null.append(np.abs(outcomes.astype(np.float64) @ one_hot - expected).sum(axis=1) / probs.size)
    return float(np.quantile(np.concatenate(null), quantile))


def chance_draws_for(quantile: float, *, least: int, beyond: int) -> int:
    """Draws enough for a ``quantile`` of the chance error: at least ``least``, and ``beyond`` of them expected
    above the quantile (0.95 with 20 beyond: 400 draws; 0.9975: 8,000)."""
    return max(least, int(np.ceil(beyond / (1.0 - quantile))))


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


def _wald(value: float, se: float, z: float) -> Interval:
    return Interval(value, value - z * se, value + z * se)


def logistic_recalibration(y: npt.ArrayLike, p: npt.ArrayLike, *, level: float = 0.95) -> Recalibration:
    """Slope and intercept of logistic recalibration with Wald intervals at ``level`` (default 95%); NaN where they
    are undefined (a single class, or every case given the same probability)."""
    if not 0 < level < 1:
        raise ValueError(f"an interval's level lies strictly between 0 and 1, got {level}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
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
            return Recalibration(Interval(NAN, NAN, NAN), _wald(float(intercept), float(intercept_se), z), n)
        (_, slope), (_, slope_se) = _newton(np.column_stack([ones, score]), labels, np.zeros(n))
    except np.linalg.LinAlgError:
        return undefined
    return Recalibration(_wald(float(slope), float(slope_se), z), _wald(float(intercept), float(intercept_se), z), n)
