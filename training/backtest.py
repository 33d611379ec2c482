"""The backtest stage: the chosen setting refitted at each rolling origin, with the baselines, tested on its year."""

from __future__ import annotations

import datetime as dt
import functools
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
import pandas as pd

from models import RiskModel, neglect_population
from outcomes.backtest import BOOSTER, LOGISTIC, Backtest, OriginPredictions, summarise_backtest
from training.baseline import fit_logistic_baseline, logistic_probabilities
from training.evaluation import EvaluatedBundle
from training.fit import FitResult, booster_params, refit_calibrated
from training.policy import CalibratorPolicy
from training.split import Origin, rolling_origins

__all__ = ["BASE_RATE", "OriginsInFlight", "backtest_origin", "fit_origins", "run_backtest", "version_predictions"]

BASE_RATE = "base rate"  # the name the evaluation stage gives it too
# Origins fitted at once (one process each): the two the backtest adds by default fit side by side on 2 cores.
MAX_WORKERS = 2


def backtest_origin(
    origin: Origin, *, fit: FitResult, seed: int, calibration: CalibratorPolicy | None = None
) -> OriginPredictions:
    """Refit at one origin exactly as the final model is fitted (the chosen setting and rounds, the calibrator on
    out-of-fold scores of children that never stopped or chose a booster), and the baselines on the same rows.

    The setting and rounds are those the search chose, not searched again at each origin: the backtest measures
    how the chosen recipe does year after year, at a quarter of the cost of a search per origin.
    """
    refit = refit_calibrated(
        origin.train, origin.calibration, params=booster_params(fit.params, seed=seed), rounds=fit.best_iteration,
        seed=seed, calibration=calibration,
    )  # fmt: skip
    test = origin.test
    matrix = RiskModel.model_matrix(test)
    raw = np.asarray(refit.booster.predict(matrix, raw_score=True, num_threads=1), dtype=float)
    truth = test["true_probability"].to_numpy(dtype=float) if "true_probability" in test else None
    return OriginPredictions(
        year=origin.year,
        train_rows=len(origin.train),
        y=test["label"].to_numpy(),
        in_scope=test["in_scope"].to_numpy(dtype=bool),
        p={
            BOOSTER: refit.calibrator.apply(raw, neglect_population(matrix)),
            LOGISTIC: logistic_probabilities(fit_logistic_baseline(origin.train), test),
            BASE_RATE: np.full(len(test), float(origin.train["label"].mean())),
        },
        truth=truth if truth is not None and np.isfinite(truth).all() else None,
    )


def version_predictions(evaluated: EvaluatedBundle, *, train_rows: int) -> OriginPredictions:
    """This version and its baselines on its own test year: the backtest's last origin, already fitted (the split's
    refit rows are that origin's training rows, so refitting it again would give the same probabilities)."""
    test = evaluated.test
    truth = test["true_probability"].to_numpy(dtype=float) if "true_probability" in test else None
    return OriginPredictions(
        year=evaluated.test_year,
        train_rows=train_rows,
        y=evaluated.y,
        in_scope=test["in_scope"].to_numpy(dtype=bool),
        p={BOOSTER: evaluated.p} | {name: evaluated.p_baselines[name] for name in (LOGISTIC, BASE_RATE)},
        truth=truth if truth is not None and np.isfinite(truth).all() else None,
    )


def run_backtest(
    frame: pd.DataFrame,
    *,
    data_end: dt.date,
    fit: FitResult,
    years: int,
    seed: int,
    n_boot: int,
    chance_draws: int = 500,
    chance_quantile: float = 0.95,
    fitted: Sequence[OriginPredictions] = (),
    calibration: CalibratorPolicy | None = None,
) -> Backtest | None:
    """The rolling-origin backtest over the last ``years`` complete years; None where ``years`` is 0 or no year has
    two before it. ``fitted`` holds origins already fitted (this version's own test year), used as they are."""
    if years == 0:
        return None
    origins = [o for o in rolling_origins(frame, data_end=data_end, years=years, seed=seed) if len(o.test)]
    if not origins:
        return None
    known = {o.year: o for o in fitted}
    to_fit = [origin for origin in origins if origin.year not in known]
    known |= {p.year: p for p in fit_origins(to_fit, fit=fit, seed=seed, calibration=calibration)}
    predictions = [known[origin.year] for origin in origins]
    return summarise_backtest(
        predictions, n_boot=n_boot, seed=seed, chance_draws=chance_draws, chance_quantile=chance_quantile
    )


class OriginsInFlight:
    """Origins being fitted in forked processes while the caller goes on; ``result`` waits for them, in order."""

    def __init__(self, origins: Sequence[Origin], *, fit: FitResult, seed: int, calibration: CalibratorPolicy | None):
        work = functools.partial(backtest_origin, fit=fit, seed=seed, calibration=calibration)
        self._done: list[OriginPredictions] | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._futures: list[Future[OriginPredictions]] = []
        if not origins or (os.cpu_count() or 1) < 2:  # one core: nothing to overlap with
            self._done = [work(origin) for origin in origins]
            return
        workers = min(len(origins), MAX_WORKERS)
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
        self._futures = [self._pool.submit(work, origin) for origin in origins]

    def result(self) -> list[OriginPredictions]:
        """Each origin's predictions, in the order given; an origin's error is raised here."""
        if self._done is None:
            assert self._pool is not None
            try:
                self._done = [future.result() for future in self._futures]
            finally:
                self._pool.shutdown(cancel_futures=True)
        return self._done


def fit_origins(
    origins: Sequence[Origin], *, fit: FitResult, seed: int, calibration: CalibratorPolicy | None
) -> list[OriginPredictions]:
    """Each origin fitted, in order; side by side in forked processes where there are several and the cores
    (each fit is single-threaded and the same wherever it runs, so the results do not depend on it)."""
    return OriginsInFlight(origins, fit=fit, seed=seed, calibration=calibration).result()
