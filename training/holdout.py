"""The pre-deployment hold-out: closures decided before the tool came in, kept aside and judged on by every version.

Once the tool is in use, outcomes are observed only for the cases managers chose to close, and help that worked makes
high-risk features look harmless: a version judged only on later data could have learnt exactly that and pass. When
the deployment date is known (the policy's ``[deployment]`` section, ``CCR_DEPLOYED_SINCE`` or ``closure-risk train
--deployed-since``), every new version is also judged on the closures decided before it, of the children the split
keeps out of every fit (``training.split.child_group`` "test": never trained, stopped, chosen or calibrated on, by
this version or by a champion trained with the same seed). The gate refuses a version that is worse there than the
champion beyond chance, or that cannot be judged there at all. Its calibration there is reported beside, not
judged: the hold-out's years are older than the test year, and a base rate that moved over them moves the slope of
every version alike (the comparison with the champion on the same closures is what shows a version learnt worse).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from outcomes.evaluate import Evaluation, evaluate
from training.fit import FittedBundle
from training.gate import CalibrationCheck, GateDecision, check_calibration, paired_auc_difference
from training.policy import CalibrationPolicy
from training.split import child_group

__all__ = ["HOLDOUT", "HoldoutCheck", "holdout_rows", "judge_holdout", "with_holdout"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
HOLDOUT = "pre-deployment hold-out"


@dataclass(frozen=True)
class HoldoutCheck:
    """A version judged on the pre-deployment hold-out: its figures, the champion's comparison, the verdict."""

    deployed_since: dt.date
    n: int  # hold-out closures
    rereferrals: int
    evaluation: Evaluation | None  # None: too few closures (or one outcome only) to judge on
    calibration: CalibrationCheck | None
    comparison: dict[str, float] | None  # ``paired_auc_difference`` against the champion, where there is one
    passed: bool
    reasons: tuple[str, ...]


def holdout_rows(frame: pd.DataFrame, *, deployed_since: dt.date, seed: int) -> pd.DataFrame:
    """The closures decided before ``deployed_since`` of the children ``split_by_time`` (same seed) never fits on."""
    before = pd.to_datetime(frame["closure_date"]) < pd.Timestamp(deployed_since)
    kept_out = frame["la_child_id"].map(lambda child: child_group(str(child), seed=seed)) == "test"
    return frame[before.to_numpy() & kept_out.to_numpy()].reset_index(drop=True)


def judge_holdout(
    holdout: pd.DataFrame,
    fitted: FittedBundle,
    *,
    deployed_since: dt.date,
    p_champion: FloatArray | None,
    policy: CalibrationPolicy,
    min_closures: int,
    n_boot: int,
    seed: int,
) -> HoldoutCheck:
    """Evaluate the new version on the hold-out, check its calibration there and compare it with the champion's
    probabilities of the same closures; every reason carries its figures."""
    seen = frozenset().union(*fitted.data_use.values())
    if holdout["la_child_id"].astype(str).isin(seen).any():  # the split's invariant: fail loudly, never judge on it
        raise ValueError("the pre-deployment hold-out holds a child the version was fitted on")
    y = holdout["label"].to_numpy(dtype=int)
    n, rereferrals = len(y), int(y.sum())
    where = f"{HOLDOUT} (closures decided before {deployed_since}, of children never fitted on: {n} closures, " \
            f"{rereferrals} re-referred)"  # fmt: skip
    if n < min_closures or rereferrals in (0, n):
        reason = (
            f"{where}: too few to judge a version on (the policy needs {min_closures} closures with both outcomes), "
            "so data after deployment would be the only data it is judged on: not promoted. Give the returns from "
            "before the deployment date, or correct the date."
        )
        return HoldoutCheck(deployed_since, n, rereferrals, None, None, None, False, (reason,))
    p = fitted.predict_proba(holdout)
    band = fitted.bands.assign(p)
    evaluation = evaluate(y, p, high=band == "high", band=band, n_boot=n_boot, seed=seed)
    calibration = check_calibration(y, p, population=where, policy=policy, seed=seed + 7)
    reasons = [f"{reason} (reported; the hold-out judges against the champion)" for reason in calibration.reasons]
    passed = True
    comparison = None
    if p_champion is None:
        reasons.append(f"{where}: no champion to compare with")
    else:
        comparison = paired_auc_difference(y, p, p_champion, n_boot=n_boot, seed=seed)
        figures = (
            f"AUC {comparison['new_auc']:.4f} vs champion {comparison['champion_auc']:.4f} on the same closures "
            f"(difference {comparison['difference']:+.4f}, 95% interval {comparison['difference_low']:+.4f} to "
            f"{comparison['difference_high']:+.4f})"
        )
        worse = comparison["difference_high"] < 0
        passed = passed and not worse
        verdict = "worse than the champion beyond chance: not promoted" if worse else "not worse than the champion"
        reasons.append(f"{where}: {figures}: {verdict}")
    return HoldoutCheck(deployed_since, n, rereferrals, evaluation, calibration, comparison, passed, tuple(reasons))


def with_holdout(decision: GateDecision, check: HoldoutCheck | None) -> GateDecision:
    """The gate's decision with the hold-out's verdict and reasons added; unchanged where no date is set."""
    if check is None:
        return decision
    return replace(decision, promote=decision.promote and check.passed, reasons=(*decision.reasons, *check.reasons))
