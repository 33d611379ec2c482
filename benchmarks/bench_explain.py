"""Explanations side by side: this project's explainer against ``shap.TreeExplainer`` on the same model, one run.

Builds the model the training pipeline registers (the default cohort, ``data/synthetic``, the pipeline's seed),
then explains closed cases of its data (their features as at closure) with both:

- **this project**: ``RiskModel.explainer`` (exact tree-path-dependent TreeSHAP tabulated per leaf group when the
  model is loaded, compiled with numba; one thread);
- **shap**: ``shap.TreeExplainer(booster, feature_perturbation="tree_path_dependent").shap_values(X)``, given the
  same float matrix (its fastest input; a DataFrame is slower) and left to use every core, as it does by default
  (for a LightGBM booster it calls LightGBM's own ``pred_contrib``).

One case at a time (each of ``--single`` cases explained alone, as a request would) and batches of 10,000. Prints
seconds, cases per second, the speed ratio and the largest absolute difference between the two sets of values.
Targets of the performance issue: at least 5 times faster, values equal within 1e-6.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

TARGET_RATIO = 5.0
TARGET_DIFFERENCE = 1e-6


def _best_of(repeats: int, run: Any) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--single", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3, help="each timing is the best of this many runs")
    args = parser.parse_args()

    import shap

    from models import RiskModel
    from training import load_training_frame
    from training.fit import fit_bundle
    from training.settings import TrainingSettings
    from training.split import split_by_time

    built = load_training_frame(args.data)
    settings = TrainingSettings()
    seed = settings.seed
    split = split_by_time(built.frame, data_end=dt.date.fromisoformat(str(built.summary["data_end"])), seed=seed)
    model = fit_bundle(split, seed=seed, search=settings.search).model()
    rows = RiskModel.model_matrix(built.frame)
    batch = rows[np.resize(np.arange(len(rows)), args.batch)]
    single = batch[: args.single]

    started = time.perf_counter()
    ours = model.explainer  # the tables are built when a model is loaded (serving: at start-up)
    build_s = time.perf_counter() - started
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # shap's note that LightGBM's binary output changed shape
        theirs = shap.TreeExplainer(model.booster, feature_perturbation="tree_path_dependent")
        reference = np.asarray(theirs.shap_values(batch))
        base_reference = float(np.ravel(theirs.expected_value)[0])
        _, contributions = ours.explain(batch)
        difference = float(np.max(np.abs(contributions - reference)))
        base_difference = abs(ours.base_value - base_reference)

        batch_ours = _best_of(args.repeats, lambda: ours.explain(batch))
        batch_shap = _best_of(args.repeats, lambda: theirs.shap_values(batch))
        single_ours = _best_of(args.repeats, lambda: [ours.explain(single[i : i + 1]) for i in range(len(single))])
        single_shap = _best_of(
            args.repeats, lambda: [theirs.shap_values(single[i : i + 1]) for i in range(len(single))]
        )

    trees = model.booster.num_trees()
    result = {
        "model": {"trees": trees, "features": rows.shape[1], "params": model.metadata.params},
        "explainer_build_s": round(build_s, 2),
        "batch": {
            "cases": len(batch),
            "ours_s": round(batch_ours, 4),
            "shap_s": round(batch_shap, 4),
            "ours_cases_per_s": round(len(batch) / batch_ours),
            "shap_cases_per_s": round(len(batch) / batch_shap),
            "ratio": round(batch_shap / batch_ours, 2),
        },
        "single_case": {
            "cases": len(single),
            "ours_us_per_case": round(single_ours / len(single) * 1e6, 1),
            "shap_us_per_case": round(single_shap / len(single) * 1e6, 1),
            "ratio": round(single_shap / single_ours, 2),
        },
        "max_abs_difference": difference,
        "base_value_difference": base_difference,
        "targets": {
            "ratio": TARGET_RATIO,
            "max_abs_difference": TARGET_DIFFERENCE,
            "met": min(batch_shap / batch_ours, single_shap / single_ours) >= TARGET_RATIO
            and difference <= TARGET_DIFFERENCE,
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
