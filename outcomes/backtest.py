"""The rolling-origin backtest's figures: each origin's predictions of its year, per year and pooled, with the mean
and the worst over years.

Fitting a model per origin is training's business; this module only judges predictions: discrimination, Brier,
calibration error against what a calibrated model shows by chance at that size, logistic recalibration slope and
intercept, the share of the oracle's AUC where the truth is known, for every model on the same closures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from outcomes.calibration import calibration_chance_bound, logistic_recalibration
from outcomes.evaluate import (
    Interval,
    as_labels,
    as_probabilities,
    bootstrap_counts,
    expected_calibration_error,
    weighted_average_precision,
    weighted_ece,
    weighted_mean,
    weighted_roc_auc,
)

__all__ = [
    "BOOSTER",
    "LOGISTIC",
    "MIN_NEGLECT_CASES",
    "Backtest",
    "BacktestYear",
    "Figures",
    "OriginPredictions",
    "backtest_figures",
    "summarise_backtest",
]

FloatArray = npt.NDArray[np.float64]
NAN = float("nan")
BOOSTER = "LightGBM"
LOGISTIC = "logistic regression"
MIN_NEGLECT_CASES = 50  # fewer cases of the neglect population in a year: no figures of its own that year


def _interval_dict(interval: Interval) -> dict[str, float]:
    return {"value": interval.value, "low": interval.low, "high": interval.high}


@dataclass(frozen=True, slots=True)
class Figures:
    """One model's predictions of one set of closures: each figure with its 95% interval (bootstrap for the
    discrimination, Brier and calibration error; Wald for the recalibration slope and intercept)."""

    n: int
    positives: int
    roc_auc: Interval
    pr_auc: Interval
    brier: Interval
    ece: Interval  # expected calibration error, ten equal-width bins
    ece_chance: float  # what a perfectly calibrated model shows at this size, 95% of the time
    slope: Interval  # logistic recalibration: below 1 over-confident
    intercept: Interval  # calibration-in-the-large: above 0 too low overall
    auc_ratio: Interval | None  # AUC / the true probabilities' AUC, where the truth is known

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "positives": self.positives, "ece_chance": self.ece_chance}
        for name in ("roc_auc", "pr_auc", "brier", "ece", "slope", "intercept", "auc_ratio"):
            interval = getattr(self, name)
            out[name] = None if interval is None else _interval_dict(interval)
        return out


@dataclass(frozen=True, slots=True)
class OriginPredictions:
    """What one origin's models predicted for its year; ``p`` maps a model's name to its probabilities."""

    year: int
    train_rows: int
    y: npt.NDArray[Any]
    in_scope: npt.NDArray[np.bool_]  # the neglect population
    p: Mapping[str, FloatArray]
    truth: FloatArray | None = None


@dataclass(frozen=True)
class BacktestYear:
    """Every model's figures on one tested year (``year`` None: every year pooled)."""

    year: int | None
    train_rows: int
    models: dict[str, Figures]  # by model name, the booster first
    neglect: Figures | None  # the booster on the neglect population, where it has enough cases of both outcomes


@dataclass(frozen=True)
class Backtest:
    """Per year and pooled; ``versus_logistic`` is the booster's pooled AUC minus the logistic regression's on the
    same resamples."""

    years: tuple[BacktestYear, ...]
    pooled: BacktestYear
    versus_logistic: Interval | None
    # population ("all", "neglect") -> metric -> {"mean": ..., "worst": ...} of the booster over the tested years
    spread: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # The predictions behind the figures, for a judge that needs its own level of chance (the gate)
    origins: tuple[OriginPredictions, ...] = field(default=(), repr=False, compare=False)

    def pooled_booster(self) -> tuple[npt.NDArray[np.bool_], FloatArray, npt.NDArray[np.bool_]]:
        """The booster's pooled predictions: labels, probabilities and the neglect population, every tested year."""
        if not self.origins:
            raise ValueError("this backtest was summarised without its predictions")
        y = as_labels(np.concatenate([as_labels(o.y) for o in self.origins]))
        p = np.concatenate([as_probabilities(o.p[BOOSTER]) for o in self.origins])
        in_scope = np.concatenate([np.asarray(o.in_scope, dtype=bool) for o in self.origins])
        return y, p, in_scope

    def as_dict(self) -> dict[str, Any]:
        def year(row: BacktestYear) -> dict[str, Any]:
            return {
                "year": row.year,
                "train_rows": row.train_rows,
                "models": {name: f.as_dict() for name, f in row.models.items()},
                "neglect": row.neglect.as_dict() if row.neglect else None,
            }

        versus = self.versus_logistic
        return {
            "years": [year(row) for row in self.years],
            "pooled": year(self.pooled),
            "versus_logistic": None if versus is None else _interval_dict(versus),
            "spread": self.spread,
        }


def _two_classes(y: npt.NDArray[np.bool_]) -> bool:
    return bool(y.any() and not y.all())


def backtest_figures(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    *,
    truth: npt.ArrayLike | None = None,
    n_boot: int,
    seed: int,
    chance_draws: int = 500,
    chance_quantile: float = 0.95,
) -> Figures:
    """Every figure of one model's probabilities ``p`` against 0/1 labels ``y``."""
    labels, probs = as_labels(y), as_probabilities(p)
    oracle = None if truth is None else as_probabilities(truth, "truth")
    if labels.size == 0 or labels.size != probs.size or (oracle is not None and oracle.size != labels.size):
        raise ValueError(f"need as many labels as probabilities, at least one: {labels.size} and {probs.size}")
    both = _two_classes(labels)
    points = {
        "roc_auc": float(roc_auc_score(labels, probs)) if both else NAN,
        "pr_auc": float(average_precision_score(labels, probs)) if both else NAN,
        "brier": float(brier_score_loss(labels, probs, pos_label=True)),
        "ece": expected_calibration_error(labels, probs),
    }
    squared = (probs - labels) ** 2
    resampled: dict[str, Callable[[FloatArray], FloatArray]] = {
        "roc_auc": lambda w: weighted_roc_auc(w, labels, probs),
        "pr_auc": lambda w: weighted_average_precision(w, labels, probs),
        "brier": lambda w: weighted_mean(w, squared),
        "ece": lambda w: weighted_ece(w, labels, probs),
    }
    if oracle is not None:
        oracle_auc = float(roc_auc_score(labels, oracle)) if both else NAN
        points["auc_ratio"] = points["roc_auc"] / oracle_auc if oracle_auc else NAN
        with np.errstate(divide="ignore", invalid="ignore"):
            resampled["auc_ratio"] = lambda w: weighted_roc_auc(w, labels, probs) / weighted_roc_auc(w, labels, oracle)
    intervals = _bootstrap(points, resampled, n=labels.size, n_boot=n_boot, seed=seed)
    recalibration = logistic_recalibration(labels, probs)
    return Figures(
        n=int(labels.size),
        positives=int(labels.sum()),
        roc_auc=intervals["roc_auc"],
        pr_auc=intervals["pr_auc"],
        brier=intervals["brier"],
        ece=intervals["ece"],
        ece_chance=calibration_chance_bound(probs, seed=seed, draws=chance_draws, quantile=chance_quantile),
        slope=recalibration.slope,
        intercept=recalibration.intercept,
        auc_ratio=intervals.get("auc_ratio"),
    )


def _bootstrap(
    points: dict[str, float],
    resampled: Mapping[str, Callable[[FloatArray], FloatArray]],
    *,
    n: int,
    n_boot: int,
    seed: int,
) -> dict[str, Interval]:
    samples: dict[str, list[FloatArray]] = {name: [] for name in resampled}
    for w in bootstrap_counts(n, n_boot, np.random.default_rng(seed)):
        with np.errstate(divide="ignore", invalid="ignore"):
            for name, metric in resampled.items():
                samples[name].append(metric(w))
    return {
        name: Interval.from_samples(points[name], np.concatenate(samples[name]) if samples[name] else np.empty(0))
        for name in points
    }


def _auc_difference(y: npt.NDArray[np.bool_], a: FloatArray, b: FloatArray, *, n_boot: int, seed: int) -> Interval:
    """AUC(a) - AUC(b) on the same closures, with a paired bootstrap 95% interval."""
    if not _two_classes(y):
        return Interval(NAN, NAN, NAN)
    value = float(roc_auc_score(y, a) - roc_auc_score(y, b))
    diffs = [
        weighted_roc_auc(w, y, a) - weighted_roc_auc(w, y, b)
        for w in bootstrap_counts(y.size, n_boot, np.random.default_rng(seed))
    ]
    return Interval.from_samples(value, np.concatenate(diffs) if diffs else np.empty(0))


def _year(
    year: int | None,
    train_rows: int,
    y: npt.NDArray[np.bool_],
    in_scope: npt.NDArray[np.bool_],
    p: Mapping[str, FloatArray],
    truth: FloatArray | None,
    *,
    n_boot: int,
    seed: int,
    draws: int,
    quantile: float,
) -> BacktestYear:
    def figures(name: str, rows: npt.NDArray[np.bool_] | slice = slice(None)) -> Figures:
        return backtest_figures(y[rows], p[name][rows], truth=None if truth is None else truth[rows], n_boot=n_boot,
                                seed=seed, chance_draws=draws, chance_quantile=quantile)  # fmt: skip

    scope_y = y[in_scope]
    enough = scope_y.size >= MIN_NEGLECT_CASES and _two_classes(scope_y)
    return BacktestYear(
        year=year,
        train_rows=train_rows,
        models={name: figures(name) for name in p},
        neglect=figures(BOOSTER, in_scope) if enough else None,
    )


# The worst of a metric over years: the lowest discrimination, the highest error, the slope farthest from 1.
_WORST: dict[str, Callable[[list[float]], float]] = {
    "roc_auc": min,
    "auc_ratio": min,
    "pr_auc": min,
    "brier": max,
    "ece": max,
    "ece_over_chance": max,
    "slope": lambda values: max(values, key=lambda v: abs(math.log(v)) if v > 0 else math.inf),
    "intercept": lambda values: max(values, key=abs),
}


def _value(figures: Figures, metric: str) -> float:
    if metric == "ece_over_chance":
        return figures.ece.value - figures.ece_chance
    interval = getattr(figures, metric)
    return NAN if interval is None else float(interval.value)


def _spread(years: Sequence[BacktestYear], *, population: str) -> dict[str, dict[str, float]]:
    rows = [row.models[BOOSTER] if population == "all" else row.neglect for row in years]
    figures = [f for f in rows if f is not None]
    out: dict[str, dict[str, float]] = {}
    for metric, worst in _WORST.items():
        values = [v for v in (_value(f, metric) for f in figures) if not math.isnan(v)]
        if values:
            out[metric] = {"mean": float(np.mean(values)), "worst": float(worst(values))}
    return out


def summarise_backtest(
    origins: Sequence[OriginPredictions],
    *,
    n_boot: int,
    seed: int,
    chance_draws: int = 500,
    chance_quantile: float = 0.95,
) -> Backtest:
    """Figures per origin and pooled over origins, for every model (the booster ``BOOSTER`` among them), the mean and
    worst of the booster's figures over years, and its pooled AUC against the logistic regression's."""
    if not origins:
        raise ValueError("no origin to summarise: the backtest needs at least one tested year")
    for origin in origins:
        if BOOSTER not in origin.p:
            raise ValueError(f"year {origin.year}: no probabilities of the {BOOSTER} model")
    years = tuple(
        _year(
            o.year,
            o.train_rows,
            as_labels(o.y),
            np.asarray(o.in_scope, dtype=bool),
            o.p,
            o.truth,
            n_boot=n_boot,
            seed=seed,
            draws=chance_draws,
            quantile=chance_quantile,
        )
        for o in origins
    )
    names = list(origins[0].p)
    y = as_labels(np.concatenate([as_labels(o.y) for o in origins]))
    in_scope = np.concatenate([np.asarray(o.in_scope, dtype=bool) for o in origins])
    p = {name: np.concatenate([as_probabilities(o.p[name]) for o in origins]) for name in names}
    truths = [o.truth for o in origins if o.truth is not None]
    truth = np.concatenate(truths) if len(truths) == len(origins) else None
    pooled = _year(
        None,
        sum(o.train_rows for o in origins),
        y,
        in_scope,
        p,
        truth,
        n_boot=n_boot,
        seed=seed,
        draws=chance_draws,
        quantile=chance_quantile,
    )
    versus = _auc_difference(y, p[BOOSTER], p[LOGISTIC], n_boot=n_boot, seed=seed) if LOGISTIC in p else None
    spread = {population: _spread(years, population=population) for population in ("all", "neglect")}
    return Backtest(years=years, pooled=pooled, versus_logistic=versus, spread=spread, origins=tuple(origins))
