"""The gate stage: a new version becomes champion only when it is at least as good, calibrated and fair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from outcomes.evaluate import expected_calibration_error
from outcomes.fairness import audit_groups
from training.evaluation import EvaluatedBundle
from training.settings import TrainingSettings

__all__ = ["GateDecision", "calibration_breaches_beyond_chance", "decide", "gate_bundle", "paired_auc_difference"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class GateDecision:
    """Whether to promote, every reason (logged as tags) and the comparison with the champion, if there is one."""

    promote: bool
    reasons: tuple[str, ...]
    comparison: dict[str, float] | None = None


def gate_bundle(
    evaluated: EvaluatedBundle, *, p_champion: FloatArray | None, settings: TrainingSettings
) -> GateDecision:
    """Gate a new version on its test year; ``p_champion`` is the champion's probabilities of the same cases."""
    breaches = calibration_breaches_beyond_chance(
        evaluated.audit_frame,
        evaluated.fairness,
        max_ece=settings.max_group_calibration_error,
        min_n=settings.min_group_cases,
        seed=settings.seed,
    )
    return decide(
        y=evaluated.y,
        p_new=evaluated.p,
        p_champion=p_champion,
        calibration_error=evaluated.evaluation.metrics.ece.value,
        group_breaches=breaches,
        max_calibration_error=settings.max_calibration_error,
        n_boot=settings.bootstrap,
        seed=settings.seed,
    )


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
    """Promote when calibrated, no audited group breaches its bound beyond chance, and the test AUC is not below
    the champion's on the same cases beyond the bootstrap interval of the paired difference."""
    miscalibrated = calibration_error > max_calibration_error
    reasons = [f"calibration error {calibration_error:.3f} {'>' if miscalibrated else '<='} {max_calibration_error}"]
    if group_breaches:
        reasons += [f"group calibration: {breach}" for breach in group_breaches]
    else:
        reasons.append("no audited group beyond the calibration bound")
    promote = not miscalibrated and not group_breaches
    if p_champion is None:
        return GateDecision(promote, (*reasons, "no champion yet"))
    cmp = paired_auc_difference(y, p_new, p_champion, n_boot=n_boot, seed=seed)
    summary = (
        f"test AUC {cmp['new_auc']:.4f} vs champion {cmp['champion_auc']:.4f} on the same cases "
        f"(difference {cmp['difference']:+.4f}, "
        f"95% interval {cmp['difference_low']:+.4f} to {cmp['difference_high']:+.4f})"
    )
    if cmp["difference_high"] < 0:
        return GateDecision(False, (*reasons, f"worse than the champion: {summary}"), cmp)
    return GateDecision(promote, (*reasons, f"not worse than the champion: {summary}"), cmp)


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

    ``frame`` is the audit frame (y, p and the group columns) and ``table`` its fairness table. A small group's
    error is inflated by noise alone (a perfectly calibrated group of 140 cases shows about 0.08 with ten bins), so a
    group breaches only when its error is also above the 95th percentile of the error a perfectly calibrated model
    shows on the same predictions (outcomes redrawn from the group's own probabilities).
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
