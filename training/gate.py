"""The gate stage: a new version becomes champion only when it is at least as good, calibrated and fair."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from outcomes.backtest import BOOSTER, LOGISTIC, Backtest
from outcomes.calibration import (
    Recalibration,
    calibration_chance_bound,
    chance_draws_for,
    logistic_recalibration,
)
from outcomes.disparity import FairnessReport, deep_fairness_audit
from outcomes.evaluate import Interval, expected_calibration_error
from outcomes.fairness import audit_groups, fairness_audit
from training.evaluation import EvaluatedBundle
from training.policy import BaselinePolicy, CalibrationPolicy
from training.settings import TrainingSettings

__all__ = [
    "AuditedGroups",
    "CalibrationCheck",
    "ChanceLevel",
    "GateDecision",
    "audited_groups",
    "calibration_breaches_beyond_chance",
    "calibration_family",
    "check_calibration",
    "decide",
    "family_level",
    "gate_bundle",
    "judge_baseline",
    "paired_auc_difference",
]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class GateDecision:
    """Whether to promote, every reason (logged as tags) and the comparison with the champion, if there is one."""

    promote: bool
    reasons: tuple[str, ...]
    comparison: dict[str, float] | None = None
    calibration: tuple[CalibrationCheck, ...] = ()
    fairness: FairnessReport | None = None  # the deeper audit under the policy's [fairness] section


@dataclass(frozen=True)
class ChanceLevel:
    """The chance at which one calibration check refuses a calibrated model: the family's level shared over its
    checks (Bonferroni), so that a calibrated model is refused by any of them at most ``family`` of the time."""

    checks: int  # checks in the family
    family: float  # chance that a calibrated model is refused by any of them
    draws: int  # chance draws behind each error bound

    @property
    def each(self) -> float:
        """Each check's chance of refusing a calibrated model."""
        return self.family / self.checks

    @property
    def quantile(self) -> float:
        """The chance bound's quantile, and the slope interval's level."""
        return 1.0 - self.each

    def describe(self) -> str:
        if self.checks == 1:
            return f"one check at {_percent(self.each)}"
        return f"{_percent(self.each)} each: {_percent(self.family)} over the gate's {self.checks} calibration checks"


def _percent(share: float) -> str:
    return f"{100 * share:.3g}%"


def family_level(policy: CalibrationPolicy, *, checks: int) -> ChanceLevel:
    """The level of each of ``checks`` checks judged as one family at the policy's ``family_wise_level``, with
    enough chance draws for its quantile (at least ``chance_draws``, ``tail_draws`` of them beyond it)."""
    checks = max(1, checks)
    quantile = 1.0 - policy.family_wise_level / checks
    draws = chance_draws_for(quantile, least=policy.chance_draws, beyond=policy.tail_draws)
    return ChanceLevel(checks, policy.family_wise_level, draws)


@dataclass(frozen=True)
class AuditedGroups:
    """The closures whose audited groups the gate judges for calibration, and their fairness table."""

    frame: pd.DataFrame  # y, p, high and the group columns of each closure
    table: pd.DataFrame  # one row per (dimension, group): n and ece are what the gate reads
    closures: str  # what they are, as the reasons name them

    def gated(self, min_cases: int) -> int:
        """How many groups the gate judges: those of at least ``min_cases`` closures (smaller ones are reported)."""
        return int((self.table["n"] >= min_cases).sum())


def audited_groups(
    test_year: pd.DataFrame, table: pd.DataFrame, pooled: pd.DataFrame | None, *, seed: int
) -> AuditedGroups:
    """The pooled backtest's closures (``training.pipeline.audited_closures``: the test year's and the earlier
    backtest years', each scored out of time) where the fairness audit reads them, with a fairness table computed on
    them as the test year's is; otherwise the test year's closures (``test_year``) and their table (``table``).

    A group's calibration is then judged on the closures the populations are judged on: one test year's group of a
    few hundred closures can be off by chance where the recipe is calibrated on every year (the model of a cohort
    refused on its largest groups' test year while its pooled backtest was well within)."""
    if pooled is None:
        return AuditedGroups(test_year, table, "test cases")
    # Only the point estimates (n, ece) are read: the bootstrap's intervals would not change them.
    return AuditedGroups(pooled, fairness_audit(pooled, n_boot=0, seed=seed), "backtest closures")


def calibration_family(policy: CalibrationPolicy, *, populations: int, groups: AuditedGroups) -> ChanceLevel:
    """The family of the gate's calibration checks: the error and the slope of each of ``populations`` populations
    judged, and the error of each audited group of at least the policy's ``min_group_cases`` closures."""
    return family_level(policy, checks=2 * populations + groups.gated(policy.min_group_cases))


def single_level(policy: CalibrationPolicy) -> ChanceLevel:
    """One check on its own at the policy's ``chance_quantile`` (a figure reported, not part of the gate's family)."""
    return ChanceLevel(1, 1.0 - policy.chance_quantile, policy.chance_draws)


@dataclass(frozen=True)
class CalibrationCheck:
    """One population's calibration judged against chance, with the figures behind the judgement."""

    population: str
    n: int
    error: float  # expected calibration error, ten bins
    chance: float  # what a perfectly calibrated model shows at this size, at the level's quantile
    recalibration: Recalibration  # slope and intercept with intervals at the level's quantile
    passed: bool
    reasons: tuple[str, ...]
    judged: bool = True  # False: reported beside the checks the gate judges (the test year, under a backtest)
    quantile: float = 0.95  # the chance bound's quantile and the intervals' level


def check_calibration(
    y: np.ndarray[Any, Any],
    p: FloatArray,
    *,
    population: str,
    policy: CalibrationPolicy,
    seed: int,
    level: ChanceLevel | None = None,
) -> CalibrationCheck:
    """Calibration error against its chance bound, and the logistic recalibration slope against the policy.

    The error fails only when it is material (above ``max_error``) and beyond chance (above what a calibrated model
    shows at ``level``'s quantile); the slope fails when its interval at that level excludes 1 and leaves
    ``slope_low``-``slope_high``. ``level`` defaults to the policy's ``chance_quantile`` for one check on its own.
    """
    level = level or single_level(policy)
    error = expected_calibration_error(y, p)
    chance = calibration_chance_bound(p, seed=seed, draws=level.draws, quantile=level.quantile)
    fit = logistic_recalibration(y, p, level=level.quantile)
    return _judge(population, len(y), error, chance, fit, policy, level)


def _judge(
    population: str,
    n: int,
    error: float,
    chance: float,
    fit: Recalibration,
    policy: CalibrationPolicy,
    level: ChanceLevel,
) -> CalibrationCheck:
    beyond = error > policy.max_error and error > chance
    q = _percent(level.quantile)
    verdict = "beyond chance and material" if beyond else "within chance or not material"
    error_reason = (
        f"{population}: calibration error {error:.3f} on {n} cases (a calibrated model shows up to "
        f"{chance:.3f} {q} of the time at this size, {level.describe()}; material above {policy.max_error:g}): "
        f"{verdict}"
    )
    slope = fit.slope
    if np.isnan(slope.value):
        slope_ok, slope_verdict = False, "undefined (a single outcome or a single score)"
    else:
        includes_one = slope.low <= 1.0 <= slope.high
        within = policy.slope_low <= slope.low and slope.high <= policy.slope_high
        slope_ok = includes_one or within
        slope_verdict = (
            "includes 1"
            if includes_one
            else f"within {policy.slope_low:g}-{policy.slope_high:g}"
            if within
            else f"excludes 1 and leaves {policy.slope_low:g}-{policy.slope_high:g}"
        )
    slope_reason = (
        f"{population}: calibration slope {slope.value:.2f} ({q} interval {slope.low:.2f} to {slope.high:.2f}), "
        f"intercept {fit.intercept.value:+.2f} ({q} interval {fit.intercept.low:+.2f} to {fit.intercept.high:+.2f})"
        f": slope {slope_verdict}"
    )
    return CalibrationCheck(population, n, error, chance, fit, not beyond and slope_ok, (error_reason, slope_reason),
                            quantile=level.quantile)  # fmt: skip


def gate_bundle(
    evaluated: EvaluatedBundle,
    *,
    p_champion: FloatArray | None,
    settings: TrainingSettings,
    backtest: Backtest | None = None,
    audited: pd.DataFrame | None = None,
) -> GateDecision:
    """Gate a new version; ``p_champion`` is the champion's probabilities of the test closures; ``audited`` the
    closures the fairness audit reads where the policy asks for more than the test year's
    (``training.pipeline.audited_closures``: the pooled backtest's).

    Calibration (all closures and the neglect population) and the comparison with the logistic baseline are judged
    on the pooled backtest where there is one: every tested year, the version's own among them, several times the
    closures of one year. The test year's calibration is then reported beside them, not judged. Each audited group's
    calibration is judged on ``audited`` where it is given, and on the test year otherwise (``audited_groups``).
    The champion is compared on the test year (it scores the same closures).

    Every calibration check the gate judges (error and slope of each population, each audited group's error) is
    one of a family judged at the policy's ``family_wise_level``: each at that level divided by their number, so a
    calibrated model is refused by chance at most that often in all (``family_level``).
    """
    policy = settings.gate_policy().calibration
    scope = evaluated.test["in_scope"].to_numpy(dtype=bool)
    test_year: list[tuple[str, np.ndarray[Any, Any], FloatArray]] = [("all test closures", evaluated.y, evaluated.p)]
    if evaluated.neglect is not None:
        test_year.append(("neglect population", evaluated.y[scope], evaluated.p[scope]))
    if backtest is not None:
        y_pooled, p_pooled, in_scope = backtest.pooled_booster()
        judged = [("all backtest closures", y_pooled, p_pooled)]
        if backtest.pooled.neglect is not None:
            judged.append(("neglect population, backtest", y_pooled[in_scope], p_pooled[in_scope]))
        reported = test_year
    else:
        judged, reported = test_year, []
    groups = audited_groups(evaluated.audit_frame, evaluated.fairness, audited, seed=settings.seed)
    level = calibration_family(policy, populations=len(judged), groups=groups)
    checks = [
        replace(
            check_calibration(y, p, population=name, policy=policy, seed=settings.seed + i, level=level),
            judged=i >= len(reported),
        )
        for i, (name, y, p) in enumerate([*reported, *judged])
    ]
    breaches = calibration_breaches_beyond_chance(
        groups.frame,
        groups.table,
        max_ece=policy.max_group_error,
        min_n=policy.min_group_cases,
        seed=settings.seed,
        n_null=level.draws,
        quantile=level.quantile,
        level=level.describe(),
    )
    baseline_ok, baseline_note = _versus_logistic(
        evaluated, backtest, policy=settings.gate_policy().baseline, n_boot=settings.bootstrap, seed=settings.seed
    )
    decision = decide(
        y=evaluated.y,
        p_new=evaluated.p,
        p_champion=p_champion,
        calibration=checks,
        group_breaches=breaches,
        n_boot=settings.bootstrap,
        seed=settings.seed,
        groups_checked=(
            f"{groups.gated(policy.min_group_cases)} groups of at least {policy.min_group_cases} {groups.closures}, "
            f"{level.describe()}"
        ),
    )
    decision = replace(decision, promote=decision.promote and baseline_ok, reasons=(*decision.reasons, baseline_note))
    fairness_policy = settings.gate_policy().fairness
    if fairness_policy is None:
        return decision
    frame = evaluated.audit_frame if audited is None else audited
    report = deep_fairness_audit(frame, policy=fairness_policy, seed=settings.seed)
    blocked = [f"fairness (blocks): {f.text}" for f in report.blocking]
    warned = [f"fairness (warning): {f.text}" for f in report.warnings]
    if not blocked:
        blocked = ["fairness: no disparity that the policy blocks on"]
    return replace(decision, promote=decision.promote and not report.blocking, fairness=report,
                   reasons=(*decision.reasons, *blocked, *warned))  # fmt: skip


def _versus_logistic(
    evaluated: EvaluatedBundle, backtest: Backtest | None, *, policy: BaselinePolicy, n_boot: int, seed: int
) -> tuple[bool, str]:
    if backtest is not None and backtest.versus_logistic is not None:
        pooled = backtest.pooled.models
        where = f"pooled backtest AUC ({pooled[BOOSTER].n} closures of {len(backtest.years)} years)"
        return judge_baseline(backtest.versus_logistic, new_auc=pooled[BOOSTER].roc_auc.value,
                              baseline_auc=pooled[LOGISTIC].roc_auc.value, where=where, policy=policy)  # fmt: skip
    versus = paired_auc_difference(evaluated.y, evaluated.p, evaluated.p_baselines[LOGISTIC], n_boot=n_boot,
                                   seed=seed)  # fmt: skip
    difference = Interval(versus["difference"], versus["difference_low"], versus["difference_high"])
    return judge_baseline(difference, new_auc=versus["new_auc"], baseline_auc=versus["champion_auc"],
                          where="test AUC", policy=policy)  # fmt: skip


def judge_baseline(
    difference: Interval, *, new_auc: float, baseline_auc: float, where: str, policy: BaselinePolicy
) -> tuple[bool, str]:
    """Whether the booster may be promoted against the logistic baseline, and the reason with its figures.

    The booster is better only when the 95% interval of its AUC minus the baseline's lies above 0; otherwise the
    simpler model is preferred, and the policy says whether that refuses the booster or is noted beside it."""
    figures = (
        f"{where} {new_auc:.4f} vs {baseline_auc:.4f} (difference {difference.value:+.4f}, 95% interval "
        f"{difference.low:+.4f} to {difference.high:+.4f})"
    )
    if np.isnan(difference.low):
        return True, f"LightGBM and the logistic baseline could not be compared: {figures}"
    if difference.low > 0:
        return True, f"LightGBM beats the logistic baseline beyond the interval: {figures}"
    if policy.when_not_better == "refuse":
        return False, (
            f"the simpler model is preferred, so LightGBM is not promoted: it does not beat the logistic baseline "
            f"beyond the interval: {figures}"
        )
    return True, (
        f"the simpler model is preferred: LightGBM does not beat the logistic baseline beyond the interval: {figures};"
        f" promoted all the same under the policy (baseline.when_not_better = note), as the service explains tree "
        f"models only"
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
    calibration: Sequence[CalibrationCheck],
    group_breaches: list[str],
    n_boot: int,
    seed: int,
    groups_checked: str | None = None,
) -> GateDecision:
    """Promote when every population is calibrated within chance, no audited group breaches its bound beyond
    chance, and the test AUC is not below the champion's on the same cases beyond the bootstrap interval of the
    paired difference."""
    reasons = [
        reason if check.judged else f"{reason} (reported; the gate judges the pooled backtest)"
        for check in calibration
        for reason in check.reasons
    ]
    if group_breaches:
        reasons += [f"group calibration: {breach}" for breach in group_breaches]
    else:
        scope = f" ({groups_checked})" if groups_checked else ""
        reasons.append(f"no audited group beyond the calibration bound{scope}")
    promote = all(check.passed for check in calibration if check.judged) and not group_breaches
    checks = tuple(calibration)
    if p_champion is None:
        return GateDecision(promote, (*reasons, "no champion yet"), None, checks)
    cmp = paired_auc_difference(y, p_new, p_champion, n_boot=n_boot, seed=seed)
    summary = (
        f"test AUC {cmp['new_auc']:.4f} vs champion {cmp['champion_auc']:.4f} on the same cases "
        f"(difference {cmp['difference']:+.4f}, "
        f"95% interval {cmp['difference_low']:+.4f} to {cmp['difference_high']:+.4f})"
    )
    if cmp["difference_high"] < 0:
        return GateDecision(False, (*reasons, f"worse than the champion: {summary}"), cmp, checks)
    return GateDecision(promote, (*reasons, f"not worse than the champion: {summary}"), cmp, checks)


def calibration_breaches_beyond_chance(
    frame: pd.DataFrame,
    table: pd.DataFrame,
    *,
    max_ece: float,
    min_n: int,
    seed: int,
    n_null: int = 500,
    quantile: float = 0.95,
    level: str | None = None,
) -> list[str]:
    """Groups (of ``min_n`` cases or more) whose calibration error exceeds ``max_ece`` beyond chance.

    ``frame`` is the audit frame (y, p and the group columns: the test year's or the pooled backtest's,
    ``audited_groups``) and ``table`` its fairness table. A small group's
    error is inflated by noise alone (a perfectly calibrated group of 140 cases shows about 0.08 with ten bins), so a
    group breaches only when its error is also above the 95th percentile of the error a perfectly calibrated model
    shows on the same predictions (outcomes redrawn from the group's own probabilities), at ``quantile`` (the gate
    passes the family's: ``level`` describes it in the reasons).
    """
    groups = audit_groups(frame)
    y, p = frame["y"].to_numpy(), frame["p"].to_numpy(dtype=float)
    reasons = []
    for i, row in enumerate(table[(table["n"] >= min_n) & (table["ece"] > max_ece)].itertuples(index=False)):
        rows = groups[str(row.dimension)] == row.group
        p_group = p[rows]
        chance = calibration_chance_bound(p_group, seed=seed + i, draws=n_null, quantile=quantile)
        observed = expected_calibration_error(y[rows], p_group)
        if observed > chance:
            reasons.append(
                f"{row.dimension}={row.group}: calibration error {observed:.3f} > {max_ece:g}, above the "
                f"{chance:.3f} a calibrated model shows {_percent(quantile)} of the time on {int(rows.sum())} cases"
                + (f" ({level})" if level else "")
            )
    return reasons
