"""The fit stage: booster search, calibrator, band thresholds and reference, from the training and validation years."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from features import FEATURES
from models import Bands, Calibrator, ModelMetadata, Reference, RiskModel, neglect_population
from training.baseline import fit_logistic_baseline
from training.policy import CalibratorPolicy, load_policy
from training.settings import SearchSpace
from training.split import Split, collection_year

__all__ = [
    "CALIBRATION_YEARS",
    "FitResult",
    "FittedBundle",
    "Refit",
    "band_thresholds",
    "booster_params",
    "calibration_folds",
    "fit_booster",
    "fit_bundle",
    "fit_calibrator",
    "neglect_shift",
    "out_of_fold_raw",
    "refit_calibrated",
]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
CALIBRATION_YEARS = 2  # the training years whose out-of-fold scores fit the calibrator: more than one

SEARCH_WORKERS = 2  # threads fitting the search's candidates: the cores of the machine it is made for

BASE_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "metric": "binary_logloss",
    "learning_rate": 0.05,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "cat_smooth": 20,
    "min_data_per_group": 100,
    "monotone_constraints_method": "advanced",
    "deterministic": True,
    "force_row_wise": True,
    # One thread: the fits are small (a few thousand to tens of thousands of rows), and OpenMP's team of two
    # busy-waits between iterations when the machine is busy, which cost ten times the CPU and the wall time of one
    # thread at a load of 8 on 2 cores (benchmarks/README.md). One thread also makes the model the same on any
    # machine, whatever its cores.
    "num_threads": 1,
    "verbosity": -1,
}


@dataclass(frozen=True)
class FitResult:
    """The chosen booster, trimmed to its best iteration, and every candidate's result."""

    booster: lgb.Booster
    params: dict[str, Any]  # the chosen candidate
    best_iteration: int
    validation_log_loss: float  # on the validation rows that chose the setting (not those that stopped it)
    search: list[dict[str, Any]]  # each candidate with its best iteration and validation log losses


@dataclass(frozen=True)
class FittedBundle:
    """Everything the training and validation years give a bundle: never the test year."""

    fit: FitResult
    calibrator: Calibrator
    calibration_scores: dict[str, float]  # cross-validated log loss of each calibration method
    # Who each use of data saw (children's ids): the calibrator never sees a child that stopped or chose the booster.
    data_use: dict[str, frozenset[str]]
    calibration_years: tuple[int, ...]  # collection years of the out-of-fold predictions the calibrator was fitted on
    calibration_folds: int  # out-of-fold boosters behind those predictions
    calibration_folds_learn_from_all: bool  # they also learnt from the children that stopped or chose the booster
    baseline: Pipeline  # logistic regression on the same features and the same rows as the final booster
    base_rate: float  # re-referral rate of those rows: the model that knows nothing about the case
    bands: Bands  # thresholds only: what each band has meant is observed on the test year
    reference: Reference
    split: dict[str, Any]  # ``Split.describe()``

    def predict_proba(self, frame: pd.DataFrame) -> FloatArray:
        """Calibrated probabilities, exactly as the bundle built from this fit gives them (``RiskModel``)."""
        return self.model().predict_proba(frame)

    def model(self) -> RiskModel:
        """The bundle as fitted, before any test year: bands without observed rates (tests and benchmarks)."""
        metadata = ModelMetadata(split=self.split, params=self.fit.params, trees=self.fit.best_iteration)
        return RiskModel(self.fit.booster, self.calibrator, self.bands, self.reference, metadata)


def fit_bundle(
    split: Split, *, seed: int, search: SearchSpace, calibration: CalibratorPolicy | None = None,
    chosen: FitResult | None = None,
) -> FittedBundle:  # fmt: skip
    """Booster, calibrator, band thresholds and reference from the years before the test year only.

    Each use of data has its own rows: the validation year's children are halved, one half stopping each candidate
    early and the other choosing among them; the calibrator is fitted on out-of-fold predictions (grouped by child,
    the chosen setting and rounds, no early stopping) of the training-group children's last ``CALIBRATION_YEARS``
    years before the test year; the final booster is then refitted on every labelled closure before the test year
    of every child outside the test group (``split.refit``) with the chosen rounds, and calibrated as validated:
    pooled, or population-aware as ``calibration`` (default: the policy file's ``[calibrator]``) says. ``chosen``
    is the setting ``fit_booster`` chose on this split, where the caller has it already.
    """
    fit = chosen if chosen is not None else fit_booster(split.train, split.validation, seed=seed, search=search)
    labelled = split.refit
    params = booster_params(fit.params, seed=seed)
    refit = refit_calibrated(labelled, split.calibration, params=params, rounds=fit.best_iteration, seed=seed,
                             calibration=calibration)  # fmt: skip
    final, calibrator, rows = refit.booster, refit.calibrator, refit.calibration
    # Bands are shares of cases, so their thresholds come from the final booster's own scores of the calibration rows:
    # the out-of-fold boosters, trained on fewer rows, can be nearly constant on a small authority.
    matrix = RiskModel.model_matrix(rows)
    raw_final = np.asarray(final.predict(matrix, raw_score=True, num_threads=1), dtype=float)
    low_below, high_from = band_thresholds(calibrator.apply(raw_final, neglect_population(matrix)))
    stop_rows, choose_rows = _halves(split.validation, seed=seed)
    return FittedBundle(
        fit=FitResult(final, fit.params, fit.best_iteration, fit.validation_log_loss, fit.search),
        calibrator=calibrator,
        calibration_scores=refit.calibration_scores,
        data_use={
            "early_stopping": _children(split.validation[stop_rows]),
            "setting_choice": _children(split.validation[choose_rows]),
            "calibration": _children(rows),
            "final_fit": _children(labelled),
        },
        calibration_years=tuple(sorted(int(y) for y in rows["closure_date"].map(collection_year).unique())),
        calibration_folds=refit.folds,
        calibration_folds_learn_from_all=refit.folds_learn_from_all,
        baseline=fit_logistic_baseline(labelled),
        base_rate=float(labelled["label"].mean()),
        bands=Bands(low_below, high_from),
        reference=Reference.from_frame(labelled),
        split=split.describe(),
    )


@dataclass(frozen=True)
class Refit:
    """A booster refitted with fixed rounds and the calibrator validated for it."""

    booster: lgb.Booster
    calibrator: Calibrator
    calibration_scores: dict[str, float]  # cross-validated log loss of each calibration method
    calibration: pd.DataFrame  # the rows whose out-of-fold scores fitted the calibrator
    folds: int  # out-of-fold boosters behind those scores
    folds_learn_from_all: bool  # ... which also learnt from every labelled child outside ``calibration``


def refit_calibrated(
    labelled: pd.DataFrame,
    calibration_rows: pd.DataFrame,
    *,
    params: dict[str, Any],
    rounds: int,
    seed: int,
    calibration: CalibratorPolicy | None = None,
) -> Refit:
    """The final booster on every ``labelled`` row (``rounds`` trees), calibrated on out-of-fold scores of the
    last ``CALIBRATION_YEARS`` years of ``calibration_rows`` (children that never stopped or chose a booster):
    pooled or population-aware as ``calibration`` says (default: the policy file's ``[calibrator]``)."""
    policy = calibration or load_policy().calibrator
    folds, others = calibration_folds(labelled, calibration_rows, policy=policy)
    raw_oof, y_oof, rows = out_of_fold_raw(
        calibration_rows, params=params, rounds=rounds, seed=seed, final_rows=len(labelled), folds=folds,
        also_train=others,
    )  # fmt: skip
    in_neglect = neglect_population(RiskModel.model_matrix(rows))
    calibrator, scores = fit_calibrator(raw_oof, y_oof, seed=seed, in_neglect=in_neglect, policy=policy)
    booster = lgb.train(params, lgb.Dataset(RiskModel.model_input(labelled), labelled["label"].to_numpy()),
                        num_boost_round=rounds)  # fmt: skip
    return Refit(booster, calibrator, scores, rows, folds, others is not None)


def calibration_folds(
    labelled: pd.DataFrame, calibration_rows: pd.DataFrame, *, policy: CalibratorPolicy
) -> tuple[int, pd.DataFrame | None]:
    """How many out-of-fold boosters score the calibration rows, and which other children's rows they also learn
    from: ``policy.folds`` of the calibration children alone, or, below ``policy.scarce_rows`` labelled closures,
    ``policy.scarce_folds`` learning also from every labelled child outside ``calibration_rows`` (those that stopped
    or chose the booster: learnt from, as the final booster learns from them, never scored)."""
    if len(labelled) >= policy.scarce_rows:
        return policy.folds, None
    others = labelled[~labelled["la_child_id"].isin(set(calibration_rows["la_child_id"]))]
    return policy.scarce_folds, others


def _children(frame: pd.DataFrame) -> frozenset[str]:
    return frozenset(frame["la_child_id"].astype(str))


def _halves(validation: pd.DataFrame, *, seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Validation rows that stop each candidate early, and the other half (other children) that choose among them."""
    stops = validation["la_child_id"].map(lambda child: _share(f"stop:{seed}:{child}") < 0.5).to_numpy(dtype=bool)
    return stops, ~stops


def _share(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def out_of_fold_raw(
    train: pd.DataFrame,
    *,
    params: dict[str, Any],
    rounds: int,
    seed: int,
    final_rows: int,
    folds: int,
    also_train: pd.DataFrame | None = None,
) -> tuple[FloatArray, FloatArray, pd.DataFrame]:
    """Raw scores of the training children's last ``CALIBRATION_YEARS`` years, each from a booster (fixed rounds)
    that never saw the child: ``folds`` folds grouped by child. Every fold's booster also learns from
    ``also_train`` (other children's rows, never scored: those that stopped or chose the booster may be learnt
    from, as the final booster learns from them, but never calibrate it). Returns scores, labels and the rows."""
    years = train["closure_date"].map(collection_year)
    recent = (years > years.max() - CALIBRATION_YEARS).to_numpy()
    fold = train["la_child_id"].map(lambda child: int(_share(f"fold:{seed}:{child}") * folds)).to_numpy()
    x = RiskModel.model_input(train)
    y = train["label"].to_numpy()
    extra = also_train if also_train is not None else train.iloc[:0]
    x_extra, y_extra = RiskModel.model_input(extra), extra["label"].to_numpy()
    raw = np.full(len(train), np.nan)
    for k in range(folds):
        held_out = fold == k
        if not (held_out & recent).any():
            continue
        x_fold = pd.concat([x[~held_out], x_extra]) if len(extra) else x[~held_out]
        y_fold = np.concatenate([y[~held_out], y_extra])
        # Leaves sized to the fold as the final booster's are to all labelled rows: a fold booster shaped like the
        # final one (on a small authority a fixed leaf size would leave the fold boosters nearly constant).
        leaf = max(1, round(params["min_data_in_leaf"] * len(y_fold) / max(final_rows, 1)))
        booster = lgb.train({**params, "min_data_in_leaf": leaf}, lgb.Dataset(x_fold, y_fold), num_boost_round=rounds)
        scored = held_out & recent
        raw[scored] = booster.predict(x[scored], raw_score=True, num_threads=1)
    return raw[recent], y[recent].astype(float), train[recent]


def booster_params(setting: dict[str, Any], *, seed: int) -> dict[str, Any]:
    return {**BASE_PARAMS, **setting, "seed": seed, "monotone_constraints": _monotone_constraints()}


def _monotone_constraints() -> list[int]:
    # Features whose direction the domain knows move the risk that way only: a completed parenting programme never
    # raises it, all else equal.
    return [spec.direction if spec.kind != "categorical" else 0 for spec in FEATURES]


def fit_booster(
    train: pd.DataFrame, validation: pd.DataFrame, *, seed: int, search: SearchSpace, workers: int | None = None
) -> FitResult:
    """Try each candidate of ``search``, stopped early on half the validation children; keep the lowest log loss on
    the other half (the first candidate on a tie).

    The candidates are fitted side by side in ``workers`` threads (default: one per core, at most two): LightGBM
    lets go of the interpreter while it grows trees, and each fit is single-threaded, so two cores fit two
    candidates at once. Threads, not forked processes: the origins forked later must not inherit a thread team
    (see ``benchmarks/README.md``). Each candidate's booster is the same whichever thread fits it, so the choice
    is the one a single thread makes.

    The search stays small and shallow because explanations are computed on every request and their cost grows
    with trees and depth.
    """
    stops, chooses = _halves(validation, seed=seed)
    x_train, x_valid = RiskModel.model_input(train), RiskModel.model_input(validation)
    y_train, y_valid = train["label"].to_numpy(), validation["label"].to_numpy()
    settings = [candidate.model_dump() for candidate in search.candidates]

    def fit(setting: dict[str, Any]) -> lgb.Booster:
        train_set = lgb.Dataset(x_train, y_train, free_raw_data=False)
        stop_set = lgb.Dataset(x_valid[stops], y_valid[stops], reference=train_set, free_raw_data=False)
        return lgb.train(
            booster_params(setting, seed=seed),
            train_set,
            num_boost_round=search.max_rounds,
            valid_sets=[stop_set],
            valid_names=["validation"],
            callbacks=[lgb.early_stopping(search.early_stopping, verbose=False)],
        )

    count = min(os.cpu_count() or 1, SEARCH_WORKERS, len(settings)) if workers is None else workers
    if count > 1:
        with ThreadPoolExecutor(max_workers=count, thread_name_prefix="ccr-search") as pool:
            boosters = list(pool.map(fit, settings))
    else:
        boosters = [fit(setting) for setting in settings]
    results: list[dict[str, Any]] = []
    best: FitResult | None = None
    for setting, booster in zip(settings, boosters, strict=True):
        # Scored here, in the calling thread, with one thread: LightGBM then leaves this thread's OpenMP team at
        # one thread, as the search always did before the origins are forked.
        p_choose = booster.predict(x_valid[chooses], num_iteration=booster.best_iteration, num_threads=1)
        loss = float(log_loss(y_valid[chooses], p_choose, labels=[0, 1]))
        stop_loss = float(booster.best_score["validation"]["binary_logloss"])
        results.append(
            {
                **setting,
                "best_iteration": booster.best_iteration,
                "validation_log_loss": loss,
                "stop_log_loss": stop_loss,
            }
        )
        if best is None or loss < best.validation_log_loss:
            best = FitResult(booster, {**setting}, booster.best_iteration, loss, results)
    assert best is not None
    # Keep only the trees early stopping chose: smaller bundle, faster explanations.
    trimmed = lgb.Booster(model_str=best.booster.model_to_string(num_iteration=best.best_iteration))
    return FitResult(trimmed, best.params, best.best_iteration, best.validation_log_loss, results)


def _platt(raw: FloatArray, y: FloatArray) -> Calibrator:
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), y)
    return Calibrator("platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))


def _isotonic(raw: FloatArray, y: FloatArray) -> Calibrator:
    iso = IsotonicRegression(y_min=1e-4, y_max=1 - 1e-4, out_of_bounds="clip").fit(raw, y)
    return Calibrator("isotonic", x=tuple(map(float, iso.X_thresholds_)), y=tuple(map(float, iso.y_thresholds_)))


_METHODS = {"platt": _platt, "isotonic": _isotonic}


def fit_calibrator(
    raw: FloatArray,
    y: FloatArray,
    *,
    seed: int,
    in_neglect: np.ndarray[Any, np.dtype[np.bool_]] | None = None,
    policy: CalibratorPolicy | None = None,
) -> tuple[Calibrator, dict[str, float]]:
    """Choose Platt or isotonic by 5-fold log loss within the out-of-fold scores (never test data), then fit it on
    all of them. Population-aware (``policy.population == "neglect"``): then, on the neglect population's rows
    (``in_neglect``), a logistic recalibration of that pooled probability, shrunk toward none (``neglect_shift``);
    pooled alone where the population has fewer than ``policy.min_cases`` rows or ``policy.min_events`` of each
    outcome."""
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    scores: dict[str, float] = {}
    for name, fit in _METHODS.items():
        losses = []
        for fit_rows, score_rows in folds.split(raw, y):
            calibrator = fit(raw[fit_rows], y[fit_rows])
            losses.append(log_loss(y[score_rows], calibrator.apply(raw[score_rows]), labels=[0, 1]))
        scores[name] = float(np.mean(losses))
    chosen = min(scores, key=lambda name: scores[name])
    pooled = _METHODS[chosen](raw, y)
    if policy is None or policy.population == "pooled" or in_neglect is None:
        return pooled, scores
    rows = np.asarray(in_neglect, dtype=bool)
    events = float(y[rows].sum())
    if rows.sum() < policy.min_cases or min(events, rows.sum() - events) < policy.min_events:
        return pooled, scores
    shift = neglect_shift(pooled.apply(raw[rows]), y[rows], prior_cases=policy.prior_cases)
    return replace(pooled, neglect=shift), scores


def neglect_shift(p: FloatArray, y: FloatArray, *, prior_cases: float) -> tuple[float, float]:
    """(slope, intercept) of logit P(y) = intercept + slope * logit(p) on one population, by penalised maximum
    likelihood: a Gaussian prior centred on no change (slope 1, intercept 0) worth ``prior_cases`` cases for each
    coefficient, so a small population is moved only as far as its evidence carries it."""
    z = np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1))
    x = np.column_stack([np.ones_like(z), z])
    w0 = p * (1 - p)
    penalty = np.diag([prior_cases * float(w0.mean()), prior_cases * float((w0 * z**2).mean())])
    beta = np.zeros(2)  # (intercept, slope - 1): zero is no change
    for _ in range(50):
        mu = 1.0 / (1.0 + np.exp(-(z + x @ beta)))
        info = x.T @ (x * (mu * (1 - mu))[:, None]) + penalty
        step = np.linalg.solve(info, x.T @ (y - mu) - penalty @ beta)
        beta = beta + step
        if np.abs(step).max() < 1e-10:
            break
    return float(1.0 + beta[1]), float(beta[0])


def band_thresholds(
    p_validation: FloatArray, *, low_share: float = 0.4, high_share: float = 0.2
) -> tuple[float, float]:
    """Probability thresholds so that about ``low_share`` of validation cases are low and ``high_share`` high."""
    low_below, high_from = np.quantile(p_validation, [low_share, 1 - high_share])
    return float(low_below), float(high_from)
