"""What removing protected characteristics from the inputs costs: the equality impact draft's ablation.

Two boosters are fitted by the same short procedure on the same rows, one with every input and one without the
dropped ones (by default the child's sex and disability, the protected characteristics the model reads): the chosen
setting and number of trees of the trained version, Platt scaling on the validation year, scored on the test year.
The difference between the two is the cost of removing them; comparing against the full model fitted the same way
(not against the trained version, whose calibration was chosen by a longer search) keeps the comparison fair.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from features import FEATURE_NAMES, FEATURES
from models import RiskModel
from outcomes.evaluate import expected_calibration_error
from outcomes.fairness import audit_groups
from training.fit import BASE_PARAMS, FittedBundle
from training.split import Split

__all__ = ["DROPPED", "Ablation", "ablate"]

DROPPED = ("sex", "disability")
MIN_GROUP = 30  # fewer test closures in a group: its calibration error is not compared


@dataclass(frozen=True)
class Ablation:
    dropped: tuple[str, ...]
    auc_full: float
    auc_without: float
    ece_full: float
    ece_without: float
    # (dimension, group, closures, calibration error with every input, without the dropped ones)
    groups: list[tuple[str, str, int, float, float]]

    @property
    def auc_cost(self) -> float:
        return self.auc_full - self.auc_without


def _fit(split: Split, fitted: FittedBundle, columns: list[str], *, seed: int) -> np.ndarray[Any, Any]:
    constraints = [spec.direction if spec.kind != "categorical" else 0 for spec in FEATURES if spec.name in columns]
    params = {**BASE_PARAMS, **fitted.fit.params, "seed": seed, "monotone_constraints": constraints, "verbose": -1}
    x_train = RiskModel.model_input(split.train)[columns]
    train_set = lgb.Dataset(x_train, split.train["label"].to_numpy(), free_raw_data=False)
    booster = lgb.train(params, train_set, num_boost_round=max(fitted.fit.best_iteration, 1))
    raw_valid = booster.predict(RiskModel.model_input(split.validation)[columns], raw_score=True, num_threads=1)
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(raw_valid).reshape(-1, 1),
                                                         split.validation["label"].to_numpy())  # fmt: skip
    raw_test = booster.predict(RiskModel.model_input(split.test)[columns], raw_score=True, num_threads=1)
    return np.asarray(platt.predict_proba(np.asarray(raw_test).reshape(-1, 1))[:, 1], dtype=float)


def ablate(split: Split, fitted: FittedBundle, *, seed: int, dropped: tuple[str, ...] = DROPPED) -> Ablation:
    """The test-year AUC and calibration error, overall and by sex and disability group, with and without
    ``dropped``."""
    unknown = sorted(set(dropped) - set(FEATURE_NAMES))
    if unknown:
        raise ValueError(f"not model inputs: {', '.join(unknown)}")
    y = split.test["label"].to_numpy().astype(bool)
    # The two fits side by side (LightGBM lets go of the interpreter while it grows trees; each is single-threaded).
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ccr-ablation") as pool:
        full = pool.submit(_fit, split, fitted, list(FEATURE_NAMES), seed=seed)
        without = pool.submit(_fit, split, fitted, [n for n in FEATURE_NAMES if n not in dropped], seed=seed)
        p_full, p_without = full.result(), without.result()
    groups = []
    for dimension, labels in audit_groups(_audit_frame(split.test)).items():
        if dimension not in ("sex", "disability"):
            continue
        for group in sorted({str(g) for g in labels}):
            rows = np.asarray(labels == group)
            if rows.sum() >= MIN_GROUP:
                groups.append((dimension, group, int(rows.sum()), expected_calibration_error(y[rows], p_full[rows]),
                               expected_calibration_error(y[rows], p_without[rows])))  # fmt: skip
    both = len(set(y.tolist())) == 2
    return Ablation(
        dropped=tuple(dropped),
        auc_full=float(roc_auc_score(y, p_full)) if both else float("nan"),
        auc_without=float(roc_auc_score(y, p_without)) if both else float("nan"),
        ece_full=expected_calibration_error(y, p_full),
        ece_without=expected_calibration_error(y, p_without),
        groups=groups,
    )


def _audit_frame(test: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sex": test["sex"].astype("object").to_numpy(),
            "ethnic_group": test["ethnic_group"].astype("object").to_numpy(),
            "disability": test["disability"].to_numpy(),
            "age_years": test["age_years"].to_numpy(),
        }
    )
