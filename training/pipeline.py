"""``closure-risk train``: fit_bundle -> evaluate_bundle -> gate_bundle -> log_run, and a person's override."""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from models import registry
from outcomes.backtest import BOOSTER, Backtest, Figures, OriginPredictions
from outcomes.disparity import pool_closures
from outcomes.evaluate import Metrics, OracleComparison, intervals_of
from training.ablation import ablate
from training.backtest import OriginsInFlight, run_backtest, version_predictions
from training.evaluation import EvaluatedBundle, closures_to_audit, evaluate_bundle
from training.fit import FitResult, FittedBundle, fit_booster, fit_bundle
from training.frame import load_training_frame
from training.gate import GateDecision, gate_bundle
from training.holdout import HoldoutCheck, holdout_rows, judge_holdout, with_holdout
from training.learning import LearningCurve, learning_curve
from training.policy import CalibratorPolicy
from training.run_log import LoggedRun, log_run
from training.settings import TrainingSettings
from training.split import Origin, Split, require_enough_closures, rolling_origins, split_by_time

__all__ = [
    "Trained",
    "TrainingReport",
    "audited_closures",
    "champion_or_none",
    "earlier_origins",
    "fit_and_judge",
    "promote",
    "train",
]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


def _headline(block: Metrics | OracleComparison) -> dict[str, float]:
    return {k: round(v.value, 4) for k, v in intervals_of(block).items()}


def _figures(figures: Figures) -> dict[str, float]:
    values = {"n": figures.n, "ece_chance": figures.ece_chance}
    for name in ("roc_auc", "auc_ratio", "pr_auc", "brier", "ece", "slope", "intercept"):
        interval = getattr(figures, name)
        if interval is not None:
            values[name] = interval.value
    return {k: round(float(v), 4) for k, v in values.items()}


def _backtest_summary(backtest: Backtest) -> dict[str, Any]:
    pooled = backtest.pooled
    return {
        "years": [row.year for row in backtest.years],
        "pooled": _figures(pooled.models[BOOSTER]),
        "pooled_neglect": _figures(pooled.neglect) if pooled.neglect else None,
        "worst": {k: round(v["worst"], 4) for k, v in backtest.spread.get("all", {}).items()},
        "baselines_roc_auc": {name: round(f.roc_auc.value, 4) for name, f in pooled.models.items()},
    }


def _holdout_summary(check: HoldoutCheck) -> dict[str, Any]:
    out: dict[str, Any] = {"deployed_since": check.deployed_since.isoformat(), "closures": check.n,
                           "rereferrals": check.rereferrals, "passed": check.passed}  # fmt: skip
    if check.evaluation is not None:
        out["test"] = _headline(check.evaluation.metrics)
    if check.comparison is not None:
        out["versus_champion"] = {k: round(v, 4) for k, v in check.comparison.items()}
    return out


class TrainingReport(BaseModel):
    """What a training run did; ``summary()`` is the JSON ``closure-risk train`` prints."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    model: str
    version: str
    promoted: bool
    reasons: list[str]
    test_year: int
    test: dict[str, float]  # each test metric's value, rounded
    trees: int
    params: dict[str, Any]
    calibration: str
    oracle: dict[str, float] | None = None  # only where the true probabilities are known
    neglect: dict[str, float] | None = None  # only where the neglect population was evaluated on its own
    baselines: dict[str, dict[str, float]] | None = None  # the logistic regression and base rate, same test closures
    gate_policy: int | None = None  # version of the gate's policy file
    # The pre-deployment hold-out, where a deployment date is set: its size, the version's figures and the verdict
    holdout: dict[str, Any] | None = None
    # The rolling-origin backtest: the booster pooled over the tested years, and its mean and worst year
    backtest: dict[str, Any] | None = None

    @classmethod
    def of(
        cls,
        fitted: FittedBundle,
        evaluated: EvaluatedBundle,
        decision: GateDecision,
        logged: LoggedRun,
        *,
        gate_policy: int | None = None,
        backtest: Backtest | None = None,
        holdout: HoldoutCheck | None = None,
    ) -> TrainingReport:
        oracle, neglect = evaluated.evaluation.oracle, evaluated.neglect
        return cls(
            run_id=logged.run_id,
            model=registry.MODEL_NAME,
            version=logged.version,
            promoted=decision.promote,
            reasons=list(decision.reasons),
            test_year=evaluated.test_year,
            test=_headline(evaluated.evaluation.metrics),
            trees=fitted.fit.best_iteration,
            params=fitted.fit.params,
            calibration=fitted.calibrator.method,
            oracle=_headline(oracle) if oracle is not None else None,
            neglect=_headline(neglect.metrics) if neglect is not None else None,
            baselines={name: _headline(b.metrics) for name, b in evaluated.baselines.items()},
            gate_policy=gate_policy,
            backtest=_backtest_summary(backtest) if backtest is not None else None,
            holdout=_holdout_summary(holdout) if holdout is not None else None,
        )

    def summary(self) -> dict[str, Any]:
        """Plain JSON-ready data; ``oracle`` and ``neglect`` only where there are such figures."""
        return self.model_dump(exclude_none=True)


@dataclass(frozen=True, eq=False)
class Trained:
    """A run's stages before logging: the fit, its test year, the backtest and the gate's decision."""

    fitted: FittedBundle
    evaluated: EvaluatedBundle
    backtest: Backtest | None
    decision: GateDecision
    summary: dict[str, object]  # the training frame's summary (labels, ingest)
    split: Split | None = None  # the rows of each use, for the equality draft's ablation
    learning: LearningCurve | None = None  # the recipe on less data (``settings.learning_curve``)
    holdout: HoldoutCheck | None = None  # the pre-deployment hold-out, where a deployment date is set


def earlier_origins(
    frame: pd.DataFrame, split: Split, fitted: FittedBundle, *, data_end: dt.date, settings: TrainingSettings,
    calibration: CalibratorPolicy,
) -> list[tuple[Origin, OriginPredictions]]:  # fmt: skip
    """The backtest's origins before the test year, each fitted once: the backtest and the fairness audit read them."""
    return start_earlier_origins(frame, split, fitted.fit, data_end=data_end, settings=settings,
                                 calibration=calibration)()  # fmt: skip


def start_earlier_origins(
    frame: pd.DataFrame, split: Split, fit: FitResult, *, data_end: dt.date, settings: TrainingSettings,
    calibration: CalibratorPolicy,
) -> Callable[[], list[tuple[Origin, OriginPredictions]]]:  # fmt: skip
    """``earlier_origins`` started in forked processes as soon as the setting is chosen (they need only it), so
    they fit while this process refits and evaluates the version; call the result to wait for them."""
    if settings.backtest_years == 0:
        return list
    origins = [o for o in rolling_origins(frame, data_end=data_end, years=settings.backtest_years, seed=settings.seed)
               if len(o.test) and o.year != split.test_year]  # fmt: skip
    in_flight = OriginsInFlight(origins, fit=fit, seed=settings.seed, calibration=calibration)
    return lambda: list(zip(origins, in_flight.result(), strict=True))


def audited_closures(
    evaluated: EvaluatedBundle, earlier: list[tuple[Origin, OriginPredictions]], fitted: FittedBundle
) -> pd.DataFrame:
    """The test year's closures and the earlier backtest years' out-of-time predictions (each closure scored by a
    model that never saw its child or its year), for the fairness audit (its policy's ``audited_closures``)."""
    parts = [(evaluated.audit_frame, evaluated.test["la_child_id"].to_numpy())]
    for origin, predicted in earlier:
        p = predicted.p[BOOSTER]
        high = fitted.bands.assign(p) == "high"
        parts.append((closures_to_audit(origin.test, p, high), origin.test["la_child_id"].to_numpy()))
    return pool_closures(parts)


def fit_and_judge(
    data: Path, settings: TrainingSettings, *, champion: Callable[[pd.DataFrame], FloatArray] | None = None
) -> Trained:
    """Load, refuse too little data, fit, evaluate, backtest and gate; ``champion`` scores the test closures with the
    current champion, where there is one. Nothing is logged (``train`` logs; benchmarks call this alone)."""
    built = load_training_frame(data)
    policy = settings.gate_policy()
    require_enough_closures(
        built.frame, min_closures=policy.data.min_closures, min_rereferrals=policy.data.min_rereferrals
    )
    data_end = dt.date.fromisoformat(str(built.summary["data_end"]))
    split = split_by_time(built.frame, data_end=data_end, seed=settings.seed)
    chosen = fit_booster(split.train, split.validation, seed=settings.seed, search=settings.search)
    earlier_fitted = start_earlier_origins(built.frame, split, chosen, data_end=data_end, settings=settings,
                                           calibration=policy.calibrator)  # fmt: skip
    fitted = fit_bundle(split, seed=settings.seed, search=settings.search, calibration=policy.calibrator, chosen=chosen)
    evaluated = evaluate_bundle(fitted, split, data_end=data_end, n_boot=settings.bootstrap, seed=settings.seed)
    earlier = earlier_fitted()
    backtest = run_backtest(
        built.frame,
        data_end=data_end,
        fit=fitted.fit,
        years=settings.backtest_years,
        seed=settings.seed,
        n_boot=settings.bootstrap,
        chance_draws=policy.calibration.chance_draws,
        chance_quantile=policy.calibration.chance_quantile,
        fitted=[version_predictions(evaluated, train_rows=len(split.refit)), *(p for _, p in earlier)],
        calibration=policy.calibrator,
    )
    pooled = policy.fairness is not None and policy.fairness.audited_closures == "backtest"
    audited = audited_closures(evaluated, earlier, fitted) if pooled else None
    p_champion = champion(split.test) if champion is not None else None
    decision = gate_bundle(evaluated, p_champion=p_champion, settings=settings, backtest=backtest, audited=audited)
    learning = (
        learning_curve(split, fitted.fit, evaluated.p, seed=settings.seed, calibration=policy.calibrator)
        if settings.learning_curve
        else None
    )
    holdout = None
    if policy.deployment is not None and policy.deployment.deployed_since is not None:
        since = policy.deployment.deployed_since
        rows = holdout_rows(built.frame, deployed_since=since, seed=settings.seed)
        holdout = judge_holdout(rows, fitted, deployed_since=since,
                                p_champion=champion(rows) if champion is not None and len(rows) else None,
                                policy=policy.calibration, min_closures=policy.deployment.min_holdout_closures,
                                n_boot=settings.bootstrap, seed=settings.seed)  # fmt: skip
    return Trained(fitted, evaluated, backtest, with_holdout(decision, holdout), built.summary, split,
                   holdout=holdout, learning=learning)  # fmt: skip


def train(data: Path, settings: TrainingSettings) -> TrainingReport:
    """Train, evaluate, gate, log and register a model version from a folder of census returns."""
    registry.configure_tracking(
        settings.tracking_uri, experiment=settings.experiment, artifact_location=settings.artifact_location
    )
    version = registry.champion_version()
    champion = registry.load_model(version).predict_proba if version is not None else None
    run = fit_and_judge(data, settings, champion=champion)
    ablation = ablate(run.split, run.fitted, seed=settings.seed) if settings.ablation and run.split else None
    logged = log_run(run.fitted, run.evaluated, run.decision, champion=version, settings=settings,
                     backtest=run.backtest, ablation=ablation, holdout=run.holdout, learning=run.learning)  # fmt: skip
    policy = settings.gate_policy().version
    return TrainingReport.of(run.fitted, run.evaluated, run.decision, logged, gate_policy=policy,
                             backtest=run.backtest, holdout=run.holdout)  # fmt: skip


def champion_or_none(settings: TrainingSettings) -> str | None:
    """The registered champion's version in the configured store, or None."""
    registry.configure_tracking(
        settings.tracking_uri, experiment=settings.experiment, artifact_location=settings.artifact_location
    )
    return registry.champion_version()


def promote(version: str, *, reason: str, settings: TrainingSettings) -> dict[str, Any]:
    """Make ``version`` champion by a person's decision, overriding the gate; the override is recorded."""
    if not reason.strip():
        raise ValueError("an override needs a reason")
    registry.configure_tracking(
        settings.tracking_uri, experiment=settings.experiment, artifact_location=settings.artifact_location
    )
    previous = registry.champion_version()
    registry.tag_version(
        version,
        {
            "override": "true",
            "override_reason": reason.strip(),
            "override_by": getpass.getuser(),
            "override_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "override_previous_champion": previous or "none",
        },
    )
    registry.set_alias(registry.CHAMPION, version)
    return {"model": registry.MODEL_NAME, "champion": version, "previous_champion": previous, "reason": reason.strip()}
