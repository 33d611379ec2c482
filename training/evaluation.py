"""The evaluation stage: the fitted bundle on the test year, and the complete bundle with what that year showed."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from models import BAND_NAMES, ModelMetadata, RiskModel
from outcomes.disparity import audit_columns
from outcomes.evaluate import Evaluation, evaluate, intervals_of
from outcomes.fairness import fairness_audit
from training.baseline import logistic_probabilities
from training.fit import FittedBundle
from training.split import Split

__all__ = ["MIN_NEGLECT_CASES", "EvaluatedBundle", "closures_to_audit", "evaluate_bundle"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
MIN_NEGLECT_CASES = 50  # fewer test cases in the neglect population: no separate evaluation of it


@dataclass(frozen=True, eq=False)
class EvaluatedBundle:
    """The complete bundle and its test year: probabilities, evaluations and the fairness audit."""

    model: RiskModel  # bands with the rates observed in the test year, metadata with its metrics and fairness
    test: pd.DataFrame
    test_year: int
    y: np.ndarray[Any, Any]  # 0/1 labels of the test closures
    p: FloatArray  # their calibrated probabilities
    evaluation: Evaluation  # every test closure
    neglect: Evaluation | None  # the neglect population, where it has enough cases of both outcomes
    audit_frame: pd.DataFrame  # y, p, high and the audited groups of each test closure
    fairness: pd.DataFrame  # the fairness audit's table
    baselines: dict[str, Evaluation]  # the logistic regression and the base rate on the same test closures
    p_baselines: dict[str, FloatArray]  # their probabilities
    synthetic: bool  # the true probabilities are known (the oracle block is in ``evaluation``)


def closures_to_audit(test: pd.DataFrame, p: FloatArray, high: np.ndarray[Any, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "y": test["label"].to_numpy(),
            "p": p,
            "high": high,
            "sex": test["sex"].astype("object").to_numpy(),
            "ethnic_group": test["ethnic_group"].astype("object").to_numpy(),
            "disability": test["disability"].to_numpy(),
            "age_years": test["age_years"].to_numpy(),
            **audit_columns(test),  # detailed ethnicity, parental factors, extension missing, need-confirmed label
        }
    )


def evaluate_bundle(
    fitted: FittedBundle, split: Split, *, data_end: dt.date, n_boot: int, seed: int
) -> EvaluatedBundle:
    """Evaluate on the test year (all closures, the neglect population, fairness) and build the bundle once."""
    test = split.test
    y = test["label"].to_numpy()
    p = fitted.predict_proba(test)
    band = fitted.bands.assign(p)
    high = band == "high"
    truth = test["true_probability"].to_numpy() if "true_probability" in test else None
    if truth is not None and not np.isfinite(truth).all():
        truth = None  # the oracle needs the truth of every test case
    evaluation = evaluate(y, p, high=high, band=band, truth=truth, n_boot=n_boot, seed=seed)
    scope = test["in_scope"].to_numpy()
    neglect = (
        evaluate(
            y[scope],
            p[scope],
            high=high[scope],
            band=band[scope],
            truth=truth[scope] if truth is not None else None,
            n_boot=n_boot,
            seed=seed,
        )
        if scope.sum() >= MIN_NEGLECT_CASES and 0 < y[scope].sum() < scope.sum()
        else None
    )
    p_baselines = {
        "logistic regression": logistic_probabilities(fitted.baseline, test),
        "base rate": np.full(len(test), fitted.base_rate),
    }
    baselines = {
        name: evaluate(y, p_base, high=fitted.bands.assign(p_base) == "high", band=fitted.bands.assign(p_base),
                       n_boot=n_boot, seed=seed)
        for name, p_base in p_baselines.items()
    }  # fmt: skip
    audited = closures_to_audit(test, p, high)
    audit = fairness_audit(audited, n_boot=max(100, n_boot // 2), seed=seed)
    seen = evaluation.bands
    model = RiskModel(
        booster=fitted.fit.booster,
        calibrator=fitted.calibrator,
        bands=replace(
            fitted.bands,
            observed_rate={b: float(seen[b].observed_rate) for b in BAND_NAMES if b in seen},
            cases={b: int(seen[b].n) for b in BAND_NAMES if b in seen},
            observed_on=f"test closures, collection year {split.test_year}",
        ),
        reference=fitted.reference,
        metadata=ModelMetadata(
            split=fitted.split,
            params=fitted.fit.params,
            trees=fitted.fit.best_iteration,
            data_end=data_end.isoformat(),
            test_metrics={k: asdict(v) for k, v in intervals_of(evaluation.metrics).items()},
            # The manager's report states the model's performance and the fairness figures of the child's own groups.
            test_cases=len(test),
            test_year=split.test_year,
            fairness=json.loads(audit.to_json(orient="records")),  # NaN -> null
            # The report tells the truth about itself: synthetic training data, and the neglect population's own
            # bands and calibration for the cases in scope.
            trained_on_synthetic=truth is not None,
            neglect_bands={
                b: {"closures": float(o.n), "observed_rate": float(o.observed_rate)}
                for b, o in neglect.bands.items()
                if o.n
            }
            if neglect is not None
            else {},
            neglect_metrics={k: asdict(v) for k, v in intervals_of(neglect.metrics).items()} if neglect else {},
        ),
    )
    return EvaluatedBundle(
        model=model,
        test=test,
        test_year=split.test_year,
        y=y,
        p=p,
        evaluation=evaluation,
        neglect=neglect,
        audit_frame=audited,
        fairness=audit,
        baselines=baselines,
        p_baselines=p_baselines,
        synthetic=truth is not None,
    )
