"""Model quality over several synthetic authorities: does the first model hold on any authority's data?

Generates cohorts of each size for several seeds (never the default seed alone: choices are made on the means),
runs the training pipeline's stages on each (fit, test year, rolling-origin backtest, gate; nothing logged to
MLflow), and prints per cohort: the test year's AUC and share of the oracle's AUC, calibration error against the
bound a calibrated model shows at that size, recalibration slope, the neglect population's, the pooled backtest's
and the logistic baseline's figures, promoted or not (with the failing reasons); then per size the mean and the
worst over seeds, against the targets of issue 15. The baseline of each figure is named beside it: the oracle (the
true probabilities' AUC on the same closures), the chance bound (a calibrated model's error at that size) and the
logistic regression (same features, same closures).

``python -m benchmarks.bench_model_quality`` runs the full grid (5 seeds x 10,000/20,000/40,000 children and 3 seeds
of 100,000: hours on a 2-core machine); ``--sizes 10000 20000 --seeds 3`` a reduced one. Cohorts are cached in
``--cohorts`` (default: a temporary folder) so a rerun skips generation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from outcomes.backtest import BOOSTER, LOGISTIC
from synthetic import generate_cohort
from training.gate import CalibrationCheck
from training.learning import learning_curve
from training.pipeline import fit_and_judge
from training.settings import TrainingSettings

SIZES = (10_000, 20_000, 40_000, 100_000)
SEEDS = 5
LARGE = 100_000
LARGE_SEEDS = 3  # fewer seeds at 100,000 children: each takes minutes to generate and train
FIRST_SEED = 101  # cohort seeds FIRST_SEED, FIRST_SEED + 1, ...: not the default cohort's


def _cohort(folder: Path, *, children: int, seed: int, workers: int | None) -> Path:
    out = folder / f"children-{children}-seed-{seed}"
    if not (out / "manifest.json").exists():
        generate_cohort(children=children, seed=seed, start=2016, end=2025, out=out, workers=workers)
    return out


def _check(checks: tuple[CalibrationCheck, ...], population: str) -> CalibrationCheck | None:
    return next((c for c in checks if c.population == population), None)


def _cell(data: Path, settings: TrainingSettings) -> dict[str, Any]:
    cpu, wall = time.process_time(), time.perf_counter()
    run = fit_and_judge(data, settings)
    learning_cpu = time.process_time()
    curve = (
        learning_curve(
            run.split,
            run.fitted.fit,
            run.evaluated.p,
            seed=settings.seed,
            calibration=settings.gate_policy().calibrator,
        )
        if run.split is not None
        else None
    )
    learning_cpu = time.process_time() - learning_cpu
    evaluation, decision = run.evaluated.evaluation, run.decision
    every = _check(decision.calibration, "all test closures")
    neglect = _check(decision.calibration, "neglect population")
    row: dict[str, Any] = {
        "closures": run.summary.get("rows"),
        "auc": evaluation.metrics.roc_auc.value,
        "auc_oracle": evaluation.oracle.auc_ratio.value if evaluation.oracle else math.nan,
        "ece": every.error if every else math.nan,
        "ece_bound": every.chance if every else math.nan,
        "slope": every.recalibration.slope.value if every else math.nan,
        "neglect_ece": neglect.error if neglect else math.nan,
        "neglect_ece_bound": neglect.chance if neglect else math.nan,
        "neglect_slope": neglect.recalibration.slope.value if neglect else math.nan,
        "logistic_auc": run.evaluated.baselines[LOGISTIC].metrics.roc_auc.value,
        # the search's choice: leaves, depth and least closures in a leaf, and the rounds early stopping kept
        "setting": "{num_leaves}/{max_depth}/{min_data_in_leaf}".format(**run.fitted.fit.params),
        "rounds": run.fitted.fit.best_iteration,
        "promoted": decision.promote,
        "failed": [r for c in decision.calibration if c.judged and not c.passed for r in c.reasons]
        + [
            r
            for r in decision.reasons
            if r.startswith(("group calibration:", "the simpler model is preferred, so", "fairness (blocks):"))
        ],
    }
    judged = _check(decision.calibration, "all backtest closures")
    if judged is not None:  # the gate's own bound: the family's quantile (the bt_ figures below are at 95%)
        row |= {"gate_quantile": judged.quantile, "gate_bt_ece_bound": judged.chance,
                "gate_bt_slope_low": judged.recalibration.slope.low,
                "gate_bt_slope_high": judged.recalibration.slope.high}  # fmt: skip
    if run.backtest is not None:
        pooled = run.backtest.pooled
        booster = pooled.models[BOOSTER]
        row |= {
            "bt_auc": booster.roc_auc.value,
            "bt_auc_oracle": booster.auc_ratio.value if booster.auc_ratio else math.nan,
            "bt_ece": booster.ece.value,
            "bt_ece_bound": booster.ece_chance,
            "bt_slope": booster.slope.value,
            "bt_neglect_ece": pooled.neglect.ece.value if pooled.neglect else math.nan,
            "bt_neglect_ece_bound": pooled.neglect.ece_chance if pooled.neglect else math.nan,
            "bt_neglect_slope": pooled.neglect.slope.value if pooled.neglect else math.nan,
            "bt_logistic_auc": pooled.models[LOGISTIC].roc_auc.value,
            "bt_booster_minus_logistic_low": run.backtest.versus_logistic.low if run.backtest.versus_logistic else 0,
        }
        # Each origin's own slopes, the latest (this version's test year) first: which origins carry the pooled one.
        latest_first = sorted(run.backtest.years, key=lambda y: y.year or 0, reverse=True)
        for back, year in enumerate(latest_first):
            row |= {f"bt{back}_slope": year.models[BOOSTER].slope.value,
                    f"bt{back}_neglect_slope": year.neglect.slope.value if year.neglect else math.nan}  # fmt: skip
    for point in curve.points if curve is not None else ():
        share = f"lc{round(100 * point.share)}"  # the learning curve: the recipe on a share of the training children
        row |= {f"{share}_closures": point.closures, f"{share}_auc_oracle": point.auc_ratio or math.nan,
                f"{share}_ece": point.ece, f"{share}_ece_bound": point.ece_chance}  # fmt: skip
    # cpu_s: the pipeline's stages as `closure-risk train` runs them, without MLflow logging and the learning curve;
    # lc_cpu_s: what the learning curve adds to them (CCR_LEARNING_CURVE, on by default)
    return row | {"cpu_s": time.process_time() - cpu - learning_cpu, "lc_cpu_s": learning_cpu,
                  "wall_s": time.perf_counter() - wall}  # fmt: skip


# The worst over seeds: the lowest discrimination, the highest error, the slope farthest from 1.
_WORST = {"auc": min, "auc_oracle": min, "bt_auc": min, "bt_auc_oracle": min, "logistic_auc": min,
          "bt_logistic_auc": min, "lc25_auc_oracle": min, "lc50_auc_oracle": min, "lc100_auc_oracle": min}  # fmt: skip


def _worst(key: str, values: list[float]) -> float:
    if key.endswith("slope"):  # every recalibration slope: the test year's, the backtest's and each origin's
        return max(values, key=lambda v: abs(math.log(v)) if v > 0 else math.inf)
    return _WORST.get(key, max)(values)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and worst over seeds of every figure, and how many seeds were promoted."""
    keys = [k for k, v in rows[0].items() if isinstance(v, float)]
    out: dict[str, Any] = {"promoted": f"{sum(r['promoted'] for r in rows)} of {len(rows)}"}
    for key in keys:
        values = [float(r[key]) for r in rows if key in r and not math.isnan(float(r[key]))]
        if values:
            out[key] = {"mean": round(sum(values) / len(values), 4), "worst": round(_worst(key, values), 4)}
    within = [r["ece"] <= max(r["ece_bound"], 0.03) for r in rows]
    out["ece_within_bound_or_immaterial"] = f"{sum(within)} of {len(rows)}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="children per cohort")
    parser.add_argument("--seeds", type=int, default=SEEDS, help="cohort seeds per size")
    parser.add_argument("--large-seeds", type=int, default=LARGE_SEEDS, help=f"seeds at {LARGE:,} children or more")
    parser.add_argument("--first-seed", type=int, default=FIRST_SEED,
                        help="the first cohort seed (a later one extends an earlier grid with new seeds)")  # fmt: skip
    parser.add_argument("--cohorts", type=Path, default=None, help="keep generated cohorts here (reused next time)")
    parser.add_argument("--workers", type=int, default=None, help="generator processes (default: one per core)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for every interval")
    args = parser.parse_args()
    # the learning curve is computed apart from the pipeline's stages, so that its CPU is printed on its own
    settings = TrainingSettings(
        tracking_uri="sqlite:///:memory:", bootstrap=args.bootstrap, shap_sample=100, learning_curve=False,
        _env_file=None,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ccr-bench-quality-") as tmp:
        folder = args.cohorts or Path(tmp)
        print(json.dumps({"load_average": os.getloadavg(), "cores": os.cpu_count(), "training_seed": settings.seed,
                          "backtest_years": settings.backtest_years}), flush=True)  # fmt: skip
        results: dict[str, Any] = {}
        for children in args.sizes:
            seeds = args.large_seeds if children >= LARGE else args.seeds
            rows = []
            for seed in range(args.first_seed, args.first_seed + seeds):
                data = _cohort(folder, children=children, seed=seed, workers=args.workers)
                row = {"children": children, "seed": seed, **_cell(data, settings)}
                rows.append(row)
                print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
            results[str(children)] = summarise(rows)
            print(json.dumps({"children": children, "over_seeds": results[str(children)]}), flush=True)
        print(json.dumps({"load_average": os.getloadavg(), "summary": results}, indent=2))


if __name__ == "__main__":
    main()
