"""Pooled against population-aware calibration, on the same booster and the same out-of-fold scores (issue 15).

For each cohort (several sizes and seeds, never the default cohort alone: the choice is made on the means), the
training pipeline's setting search runs once; then at each origin of the rolling backtest (the last
``--years`` complete years) the booster is refitted and its out-of-fold scores computed once, and both calibrators
are fitted on those same scores: the pooled one, and the population-aware one of ``training/policy.toml``'s
``[calibrator]`` section (its sizes and shrinkage, ``population = "neglect"``). Both are applied to the same
test closures and judged, pooled over the backtest, overall and on the neglect population (``in_scope``, as the
gate judges it): calibration error beside the bound a calibrated model shows on that many cases, and the logistic
recalibration slope. Also printed: how often the features' neglect population (``models.neglect_population``, what
the calibrator can see at serving) agrees with ``in_scope``.

``python -m benchmarks.bench_calibration --cohorts DIR --sizes 10000 20000 --seeds 3``; cohorts are generated
into ``DIR`` where missing (the same folders as ``bench_model_quality``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from benchmarks.bench_model_quality import FIRST_SEED, _cohort
from models import RiskModel, neglect_population
from outcomes.calibration import calibration_chance_bound, logistic_recalibration
from outcomes.evaluate import expected_calibration_error
from training.fit import booster_params, fit_booster, fit_calibrator, out_of_fold_raw
from training.frame import load_training_frame
from training.policy import load_policy
from training.settings import TrainingSettings
from training.split import rolling_origins, split_by_time

# A way of calibrating: the calibrator's population ("pooled" or "neglect"), the number of out-of-fold boosters,
# and what they learn from besides the other folds: nothing ("own": the calibration children only) or also the
# children that stopped or chose the booster ("all": as the final booster does, never scored). Training (policy 9,
# `[calibrator]`) uses "pooled" from 16,000 labelled closures an origin and "pooled-k10-all" below.
WAYS: dict[str, tuple[str, int, bool]] = {
    "pooled": ("pooled", 3, False),
    "neglect": ("neglect", 3, False),
    "pooled-k5": ("pooled", 5, False),
    "pooled-k3-all": ("pooled", 3, True),
    "pooled-k5-all": ("pooled", 5, True),
    "pooled-k10-all": ("pooled", 10, True),
}


def _judge(y: np.ndarray[Any, Any], p: np.ndarray[Any, Any], *, seed: int) -> dict[str, float]:
    fit = logistic_recalibration(y, p)
    return {
        "n": float(len(y)),
        "ece": expected_calibration_error(y, p),
        "bound": calibration_chance_bound(p, seed=seed),
        "slope": fit.slope.value,
        "intercept": fit.intercept.value,
    }


def compare(data: Path, settings: TrainingSettings, *, years: int, ways: list[str]) -> dict[str, Any]:
    """Each way's calibration of one cohort, pooled over its backtest years (the same search and final boosters)."""
    start = time.perf_counter()
    built = load_training_frame(data)
    frame, seed = built.frame, settings.seed
    data_end = dt.date.fromisoformat(str(built.summary["data_end"]))
    split = split_by_time(frame, data_end=data_end, seed=seed)
    fit = fit_booster(split.train, split.validation, seed=seed, search=settings.search)
    params = booster_params(fit.params, seed=seed)
    base = load_policy().calibrator
    ys, scopes, proxies, ps, shifts = [], [], [], {w: [] for w in ways}, []  # type: ignore[var-annotated]
    for origin in rolling_origins(frame, data_end=data_end, years=years, seed=seed):
        if not len(origin.test):
            continue
        others = origin.train[~origin.train["la_child_id"].isin(set(origin.calibration["la_child_id"]))]
        scores: dict[tuple[int, bool], Any] = {}
        booster = lgb.train(params, lgb.Dataset(RiskModel.model_input(origin.train), origin.train["label"].to_numpy()),
                            num_boost_round=fit.best_iteration)  # fmt: skip
        matrix = RiskModel.model_matrix(origin.test)
        raw = np.asarray(booster.predict(matrix, raw_score=True, num_threads=1), dtype=float)
        proxy = neglect_population(matrix)
        for way in ways:
            population, folds, with_others = WAYS[way]
            if (folds, with_others) not in scores:
                scores[(folds, with_others)] = out_of_fold_raw(
                    origin.calibration, params=params, rounds=fit.best_iteration, seed=seed,
                    final_rows=len(origin.train), folds=folds, also_train=others if with_others else None,
                )  # fmt: skip
            raw_oof, y_oof, rows = scores[(folds, with_others)]
            in_neglect = neglect_population(RiskModel.model_matrix(rows))
            policy = base.model_copy(update={"population": population})
            calibrator, _ = fit_calibrator(raw_oof, y_oof, seed=seed, in_neglect=in_neglect, policy=policy)
            ps[way].append(calibrator.apply(raw, proxy))
            if population == "neglect":
                shifts.append(calibrator.neglect)
        ys.append(origin.test["label"].to_numpy())
        scopes.append(origin.test["in_scope"].to_numpy(dtype=bool))
        proxies.append(proxy)
    y, scope, proxy = np.concatenate(ys), np.concatenate(scopes), np.concatenate(proxies)
    out: dict[str, Any] = {
        "closures": len(frame),
        "tested": len(y),
        "neglect_tested": int(scope.sum()),
        "features_population_agrees": round(float((proxy == scope).mean()), 4),
        "features_population_recall": round(float(proxy[scope].mean()), 4),
        "shifts": [None if s is None else [round(v, 3) for v in s] for s in shifts],
    }
    for way in ways:
        p = np.concatenate(ps[way])
        out[way] = {"all": _judge(y, p, seed=seed), "neglect": _judge(y[scope], p[scope], seed=seed)}
    return out | {"wall_s": round(time.perf_counter() - start, 1)}


def _means(rows: list[dict[str, Any]], ways: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for way in ways:
        for population in ("all", "neglect"):
            for key in ("ece", "bound", "slope", "intercept"):
                values = [r[way][population][key] for r in rows if not math.isnan(r[way][population][key])]
                if not values:
                    continue
                worst = (
                    max(values, key=lambda v: abs(math.log(v)) if v > 0 else math.inf)
                    if key == "slope"
                    else max(values, key=abs)
                )
                out[f"{way}.{population}.{key}"] = {"mean": round(float(np.mean(values)), 4), "worst": round(worst, 4)}
            within = sum(r[way][population]["ece"] <= r[way][population]["bound"] for r in rows)
            out[f"{way}.{population}.within_bound"] = f"{within} of {len(rows)}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000], help="children per cohort")
    parser.add_argument("--seeds", type=int, default=3, help="cohort seeds per size (101 and up)")
    parser.add_argument("--first-seed", type=int, default=FIRST_SEED, help="the first cohort seed")
    parser.add_argument("--years", type=int, default=3, help="backtest years")
    parser.add_argument("--cohorts", type=Path, required=True, help="cohort folders (generated where missing)")
    parser.add_argument("--ways", nargs="+", choices=list(WAYS), default=["pooled", "neglect"], help="calibrations")
    args = parser.parse_args()
    settings = TrainingSettings(tracking_uri="sqlite:///:memory:", _env_file=None)
    print(json.dumps({"load_average": os.getloadavg(), "cores": os.cpu_count()}), flush=True)
    rows = []
    for children in args.sizes:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            data = _cohort(args.cohorts, children=children, seed=seed, workers=None)
            row = {"children": children, "seed": seed, **compare(data, settings, years=args.years, ways=args.ways)}
            rows.append(row)
            print(json.dumps(row, default=lambda v: round(float(v), 4)), flush=True)
    print(json.dumps({"load_average": os.getloadavg(), "over_cohorts": _means(rows, args.ways)}, indent=2), flush=True)


if __name__ == "__main__":
    main()
