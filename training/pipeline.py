"""``closure-risk train``: fit_bundle -> evaluate_bundle -> gate_bundle -> log_run, and a person's override."""

from __future__ import annotations

import datetime as dt
import getpass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from models import registry
from outcomes.evaluate import Metrics, OracleComparison, intervals_of
from training.ablation import ablate
from training.evaluation import EvaluatedBundle, evaluate_bundle
from training.fit import FittedBundle, fit_bundle
from training.frame import load_training_frame
from training.gate import GateDecision, gate_bundle
from training.run_log import LoggedRun, log_run
from training.settings import TrainingSettings
from training.split import split_by_time

__all__ = ["TrainingReport", "champion_or_none", "promote", "train"]


def _headline(block: Metrics | OracleComparison) -> dict[str, float]:
    return {k: round(v.value, 4) for k, v in intervals_of(block).items()}


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

    @classmethod
    def of(
        cls,
        fitted: FittedBundle,
        evaluated: EvaluatedBundle,
        decision: GateDecision,
        logged: LoggedRun,
        *,
        gate_policy: int | None = None,
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
        )

    def summary(self) -> dict[str, Any]:
        """Plain JSON-ready data; ``oracle`` and ``neglect`` only where there are such figures."""
        return self.model_dump(exclude_none=True)


def train(data: Path, settings: TrainingSettings) -> TrainingReport:
    """Train, evaluate, gate, log and register a model version from a folder of census returns."""
    registry.configure_tracking(
        settings.tracking_uri, experiment=settings.experiment, artifact_location=settings.artifact_location
    )
    built = load_training_frame(data)
    data_end = dt.date.fromisoformat(str(built.summary["data_end"]))
    split = split_by_time(built.frame, data_end=data_end, seed=settings.seed)

    fitted = fit_bundle(split, seed=settings.seed, search=settings.search)
    evaluated = evaluate_bundle(fitted, split, data_end=data_end, n_boot=settings.bootstrap, seed=settings.seed)
    champion = registry.champion_version()
    p_champion = registry.load_model(champion).predict_proba(split.test) if champion is not None else None
    decision = gate_bundle(evaluated, p_champion=p_champion, settings=settings)
    ablation = ablate(split, fitted, seed=settings.seed) if settings.ablation else None
    logged = log_run(fitted, evaluated, decision, champion=champion, settings=settings, ablation=ablation)
    return TrainingReport.of(fitted, evaluated, decision, logged, gate_policy=settings.gate_policy().version)


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
