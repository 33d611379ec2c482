"""The promotion gate: a new version becomes champion only when it is at least as good, calibrated and fair.

Checks, on the new version's test year: its test AUC is not below the champion's on the same cases beyond the
bootstrap interval of the paired difference; its expected calibration error is at most the bound; no audited
group with enough cases has a calibration error above the group bound beyond chance. Every reason is kept (logged
as tags).

"Beyond chance": the calibration error of a small group is inflated by noise alone (a perfectly calibrated group
of 140 cases shows about 0.08 with ten bins). So a group breaches only when its error is above the bound *and*
above the 95th percentile of the error a perfectly calibrated model would show on the same predictions (outcomes
redrawn from the group's own probabilities). Small groups are still reported in the fairness table; the gate
refuses only what the data can show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from outcomes.evaluate import expected_calibration_error
from outcomes.fairness import audit_groups

__all__ = ["GateDecision", "calibration_breaches_beyond_chance", "decide", "paired_auc_difference"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    comparison: dict[str, float] | None = None


def paired_auc_difference(
    y: np.ndarray[Any, Any], new: FloatArray, old: FloatArray, *, n_boot: int, seed: int
) -> dict[str, float]:
    """AUC(new) - AUC(old) on the same cases, with a paired bootstrap 95% interval."""
    rng = np.random.default_rng(seed)
    diffs = []
    n = len(y)
    for _ in range(n_boot):
        rows = rng.integers(0, n, n)
        if y[rows].min() == y[rows].max():
            continue
        diffs.append(roc_auc_score(y[rows], new[rows]) - roc_auc_score(y[rows], old[rows]))
    low, high = np.quantile(diffs, [0.025, 0.975])
    return {
        "new_auc": float(roc_auc_score(y, new)),
        "champion_auc": float(roc_auc_score(y, old)),
        "difference": float(roc_auc_score(y, new) - roc_auc_score(y, old)),
        "difference_low": float(low),
        "difference_high": float(high),
    }


def decide(
    *,
    y: np.ndarray[Any, Any],
    p_new: FloatArray,
    p_champion: FloatArray | None,
    calibration_error: float,
    group_breaches: list[str],
    max_calibration_error: float,
    n_boot: int,
    seed: int,
) -> GateDecision:
    decision = GateDecision(promote=True)
    if calibration_error > max_calibration_error:
        decision.promote = False
        decision.reasons.append(f"calibration error {calibration_error:.3f} > {max_calibration_error}")
    else:
        decision.reasons.append(f"calibration error {calibration_error:.3f} <= {max_calibration_error}")
    if group_breaches:
        decision.promote = False
        decision.reasons += [f"group calibration: {breach}" for breach in group_breaches]
    else:
        decision.reasons.append("no audited group beyond the calibration bound")
    if p_champion is None:
        decision.reasons.append("no champion yet")
        return decision
    decision.comparison = cmp = paired_auc_difference(y, p_new, p_champion, n_boot=n_boot, seed=seed)
    summary = (
        f"test AUC {cmp['new_auc']:.4f} vs champion {cmp['champion_auc']:.4f} on the same cases "
        f"(difference {cmp['difference']:+.4f}, "
        f"95% interval {cmp['difference_low']:+.4f} to {cmp['difference_high']:+.4f})"
    )
    if cmp["difference_high"] < 0:
        decision.promote = False
        decision.reasons.append(f"worse than the champion: {summary}")
    else:
        decision.reasons.append(f"not worse than the champion: {summary}")
    return decision


def calibration_breaches_beyond_chance(
    frame: pd.DataFrame,
    table: pd.DataFrame,
    *,
    max_ece: float,
    min_n: int,
    seed: int,
    n_null: int = 500,
) -> list[str]:
    """Groups (of ``min_n`` cases or more) whose calibration error exceeds ``max_ece`` beyond chance.

    ``frame`` is the audit frame (y, p and the group columns) and ``table`` its fairness table.
    """
    groups = audit_groups(frame)
    y, p = frame["y"].to_numpy(), frame["p"].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    reasons = []
    for row in table[(table["n"] >= min_n) & (table["ece"] > max_ece)].itertuples(index=False):
        rows = groups[str(row.dimension)] == row.group
        p_group = p[rows]
        null = [
            expected_calibration_error((rng.uniform(size=len(p_group)) < p_group).astype(int), p_group)
            for _ in range(n_null)
        ]
        chance = float(np.quantile(null, 0.95))
        observed = expected_calibration_error(y[rows], p_group)
        if observed > chance:
            reasons.append(
                f"{row.dimension}={row.group}: calibration error {observed:.3f} > {max_ece:g}, above the "
                f"{chance:.3f} a calibrated model shows 95% of the time on {int(rows.sum())} cases"
            )
    return reasons
