"""The logging stage: an MLflow run with every figure, plot and report; the registered version, its aliases, tags."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import multiprocessing
import os
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from audit.retention import RetentionSchedule
from features import FEATURE_NAMES, feature_spec
from models import RiskModel, registry
from outcomes.backtest import BOOSTER, Backtest, Figures
from outcomes.disparity import calibration_curves_plot
from outcomes.evaluate import Interval, calibration_plot, intervals_of
from outcomes.fairness import fairness_plot
from training.ablation import Ablation
from training.card import CardFacts, render_model_card, render_transparency_record, transparency_record
from training.evaluation import EvaluatedBundle
from training.fit import FittedBundle
from training.gate import GateDecision
from training.holdout import HoldoutCheck
from training.learning import LearningCurve
from training.paperwork import PaperworkFacts, write_paperwork
from training.settings import TrainingSettings

__all__ = ["LoggedRun", "log_run"]

ASIDE_TIMEOUT_S = 600  # the figures take seconds; a side process still running after this is stuck


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    version: str  # the registered version: alias challenger, and champion when the gate passed it


def _flatten(prefix: str, block: dict[str, Interval]) -> dict[str, float]:
    """Intervals as flat MLflow metric names; undefined (NaN) figures left out."""
    out: dict[str, float] = {}
    for key, interval in block.items():
        out[f"{prefix}_{key}"] = interval.value
        out[f"{prefix}_{key}_low"] = interval.low
        out[f"{prefix}_{key}_high"] = interval.high
    return {k: float(v) for k, v in out.items() if not np.isnan(v)}


def _backtest_metrics(backtest: Backtest) -> dict[str, float]:
    """The booster's pooled backtest figures (all closures and the neglect population) and its worst year."""
    out: dict[str, float] = {}
    for population, figures in (("all", backtest.pooled.models[BOOSTER]), ("neglect", backtest.pooled.neglect)):
        if figures is None:
            continue
        blocks = {k: getattr(figures, k) for k in ("roc_auc", "pr_auc", "brier", "ece", "slope", "intercept")}
        if figures.auc_ratio is not None:
            blocks["auc_ratio"] = figures.auc_ratio
        prefix = "backtest" if population == "all" else "backtest_neglect"
        out |= _flatten(prefix, blocks) | {f"{prefix}_ece_chance_bound": figures.ece_chance}
    for population, spread in backtest.spread.items():
        prefix = "backtest" if population == "all" else "backtest_neglect"
        out |= {f"{prefix}_worst_{k}": v["worst"] for k, v in spread.items() if not np.isnan(v["worst"])}
    return out


def _holdout_metrics(check: HoldoutCheck) -> dict[str, float]:
    """The pre-deployment hold-out: its size, the version's figures there and the comparison with the champion."""
    out = {"holdout_closures": float(check.n), "holdout_rereferrals": float(check.rereferrals),
           "holdout_passed": float(check.passed)}  # fmt: skip
    if check.evaluation is not None:
        out |= _flatten("holdout", intervals_of(check.evaluation.metrics))
    if check.calibration is not None:
        out["holdout_ece_chance_bound"] = check.calibration.chance
    if check.comparison is not None:
        out |= {f"holdout_champion_{k}": v for k, v in check.comparison.items()}
    return {k: float(v) for k, v in out.items() if not np.isnan(v)}


@dataclass(frozen=True)
class _Explained:
    """SHAP values of a sample of test closures (log-odds), with the features as the beeswarm colours them."""

    values: npt.NDArray[np.float64]
    numeric: npt.NDArray[np.float64]

    def importance(self) -> pd.DataFrame:
        """Global importance: mean |SHAP| in log-odds, largest first."""
        return pd.DataFrame(
            {
                "feature": list(FEATURE_NAMES),
                "label": [feature_spec(n).label for n in FEATURE_NAMES],
                "mean_abs_shap": np.abs(self.values).mean(axis=0),
            }
        ).sort_values("mean_abs_shap", ascending=False)


def _shap_values(model: RiskModel, frame: pd.DataFrame, *, sample: int, seed: int) -> _Explained:
    """The exact TreeSHAP of a sample of ``frame``, by the bundle's own explainer: the contributions the service
    gives (equal to LightGBM's and to the shap package's tree-path-dependent values; tests/models/test_treeshap.py).
    Computed here, never in the figures' process: the explainer is compiled in this one, and the shap package, which
    only draws, is imported there, beside the registration."""
    matrix = RiskModel.model_matrix(frame.sample(min(sample, len(frame)), random_state=seed))
    _, values = model.explainer.explain(matrix)
    return _Explained(np.asarray(values, dtype=float), matrix)


def _beeswarm_plot(explained: _Explained, path: Path, *, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    # Wide enough for the readable labels; shap's automatic size squeezes the plot to nothing beside them.
    shap.summary_plot(
        explained.values,
        explained.numeric,
        feature_names=[feature_spec(n).label for n in FEATURE_NAMES],
        max_display=20,
        plot_size=(15, 9),
        show=False,
        rng=np.random.default_rng(seed),  # its own generator: the plot's jitter is repeatable
    )
    plt.tight_layout()
    plt.savefig(path, dpi=110)
    plt.close("all")


def _draw_figures(
    evaluated: EvaluatedBundle, decision: GateDecision, explained: _Explained, folder: Path, *, seed: int
) -> None:
    """The run's plots (matplotlib only: nothing here may call into LightGBM, see ``_shap_values``), into ``folder``."""
    calibration_plot(
        evaluated.y, evaluated.p, folder / "calibration_test.png", title=f"Calibration, test year {evaluated.test_year}"
    )
    fairness_plot(evaluated.fairness, folder / "fairness.png")
    if decision.fairness is not None and not decision.fairness.curves.empty:
        calibration_curves_plot(decision.fairness, folder / "fairness_calibration.png")
    _beeswarm_plot(explained, folder / "shap_beeswarm.png", seed=seed)


@contextlib.contextmanager
def _aside(work: Callable[[], None]) -> Iterator[None]:
    """Run ``work`` in a forked process while the body runs, and wait for it on leaving; its error is raised here.

    Forked, the process reads the run's frames without their being copied or pickled; only a failure's traceback
    comes back. Where there is no fork or a single core, ``work`` runs first, in this process.
    """
    if "fork" not in multiprocessing.get_all_start_methods() or (os.cpu_count() or 1) < 2:
        work()
        yield
        return
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def run() -> None:
        try:
            work()
            send.send(None)
        except BaseException:  # every failure goes to the parent, which raises it
            send.send(traceback.format_exc())

    process = context.Process(target=run, name="ccr-figures", daemon=True)
    process.start()
    send.close()
    try:
        yield
    except BaseException:
        process.terminate()
        process.join()
        raise
    try:
        if receive.poll(ASIDE_TIMEOUT_S):
            failure = receive.recv()
        else:  # stuck: never wait for ever
            process.terminate()
            failure = f"the process did not finish within {ASIDE_TIMEOUT_S} s and was stopped"
    except EOFError:  # it died without a word (killed, or out of memory)
        process.join()
        failure = f"the process ended with exit code {process.exitcode} before it finished"
    process.join()
    receive.close()
    if failure is not None:
        raise RuntimeError(f"drawing the run's figures failed:\n{failure}")


_HEADLINE = ("roc_auc", "pr_auc", "brier", "ece", "slope", "intercept")


def backtest_metadata(backtest: Backtest) -> dict[str, Any]:
    """The pooled backtest's figures as the bundle's metadata carries them (``ModelMetadata.backtest_*``)."""

    def figures(found: Figures | None) -> dict[str, dict[str, float]]:
        every = found.as_dict() if found is not None else {}  # each interval as {"value", "low", "high"}
        return {name: every[name] for name in _HEADLINE if every.get(name) is not None}

    pooled = backtest.pooled
    booster = pooled.models[BOOSTER]
    return {
        "backtest_metrics": figures(booster),
        "backtest_neglect_metrics": figures(pooled.neglect),
        "backtest_cases": booster.n,
        "backtest_years": [int(row.year) for row in backtest.years if row.year is not None],
    }


def log_run(
    fitted: FittedBundle,
    evaluated: EvaluatedBundle,
    decision: GateDecision,
    *,
    champion: str | None,
    settings: TrainingSettings,
    backtest: Backtest | None = None,
    ablation: Ablation | None = None,
    learning: LearningCurve | None = None,
    holdout: HoldoutCheck | None = None,
) -> LoggedRun:
    """Log the run, register the bundle as a new version (alias challenger) and promote it if the gate passed it."""
    model, evaluation, neglect, fit = evaluated.model, evaluated.evaluation, evaluated.neglect, fitted.fit
    split, test_year = fitted.split, evaluated.test_year
    data_end = str(model.metadata.data_end)
    seed = settings.seed
    policy = settings.gate_policy()
    with (
        registry.start_run(f"train {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}") as run,
        tempfile.TemporaryDirectory(prefix="ccr-run-") as tmp,
    ):
        folder = Path(tmp)
        registry.log_params(
            {
                "seed": seed,
                "bootstrap": settings.bootstrap,
                "data_end": data_end,
                "trees": fit.best_iteration,
                "calibration": model.calibrator.method,
                "calibration_population": policy.calibrator.population,
                **{f"lgb_{k}": v for k, v in fit.params.items()},
                "test_year": test_year,
                "validation_year": split["validation_year"],
                "gate_policy_version": policy.version,
                "deployed_since": str(holdout.deployed_since) if holdout is not None else "not set",
            }
        )
        if holdout is not None:
            registry.log_metrics(_holdout_metrics(holdout))
        registry.log_metrics(
            {
                **_flatten("test", intervals_of(evaluation.metrics)),
                **_flatten("test_high", intervals_of(evaluation.high_band)),
                "validation_log_loss": fit.validation_log_loss,
                **{f"calibration_cv_log_loss_{k}": v for k, v in fitted.calibration_scores.items()},
            }
        )
        if evaluation.oracle:
            registry.log_metrics(_flatten("oracle", intervals_of(evaluation.oracle)))
        for check in decision.calibration:
            prefix = {"all test closures": "test", "neglect population": "neglect"}.get(check.population)
            if prefix is None:  # the backtest's checks: its figures are logged with the backtest
                continue
            recalibration = check.recalibration
            slope_and_intercept = {"slope": recalibration.slope, "intercept": recalibration.intercept}
            registry.log_metrics(
                {f"{prefix}_ece_chance_bound": check.chance, **_flatten(f"{prefix}_calibration", slope_and_intercept)}
            )
        (folder / "gate_policy.toml").write_text(policy.text, encoding="utf-8")
        if neglect is not None:
            registry.log_metrics(_flatten("neglect", intervals_of(neglect.metrics)))
        for name, baseline in evaluated.baselines.items():
            registry.log_metrics(_flatten(f"baseline_{name.replace(' ', '_')}", intervals_of(baseline.metrics)))
        if backtest is not None:
            registry.log_metrics(_backtest_metrics(backtest))
            (folder / "backtest.json").write_text(json.dumps(backtest.as_dict(), indent=2), encoding="utf-8")
        evaluated.fairness.to_csv(folder / "fairness.csv", index=False)
        if decision.fairness is not None:  # the deeper audit: every group, every disparity, curves by group
            decision.fairness.groups.to_csv(folder / "fairness_groups.csv", index=False)
            decision.fairness.disparities.to_csv(folder / "fairness_disparities.csv", index=False)
        (folder / "evaluation.json").write_text(
            json.dumps(
                {
                    "all": evaluation.as_dict(),
                    "neglect": neglect.as_dict() if neglect else None,
                    "split": split,
                    "search": fit.search,
                },
                indent=2,
                default=str,
            )
        )

        explained = _shap_values(model, evaluated.test, sample=settings.shap_sample, seed=seed)
        explained.importance().to_csv(folder / "shap_importance.csv", index=False)
        drawing = functools.partial(_draw_figures, evaluated, decision, explained, folder, seed=seed)
        with _aside(drawing):  # the figures are drawn while the model is registered and the paperwork written
            if backtest is not None:  # the headline figures the service's report shows travel with the bundle
                model.metadata = model.metadata.model_copy(update=backtest_metadata(backtest))
            version = registry.log_and_register(model).version
            facts = CardFacts(
                name=registry.MODEL_NAME,
                version=version,
                run_id=run.info.run_id,
                trained_on=dt.date.today().isoformat(),
                data_end=data_end,
                split=split,
                test=evaluation,
                neglect=neglect,
                bands=model.bands,
                calibrator=model.calibrator.method,
                fairness=[{str(k): v for k, v in row.items()} for row in evaluated.fairness.to_dict(orient="records")],
                gate=decision,
                min_group_cases=policy.calibration.min_group_cases,
                synthetic=evaluated.synthetic,
                baselines=evaluated.baselines,
                calibration_years=fitted.calibration_years,
                calibration_folds=fitted.calibration_folds,
                calibration_folds_learn_from_all=fitted.calibration_folds_learn_from_all,
                backtest=backtest,
                policy_text=policy.text,
                neglect_calibration=model.calibrator.neglect,
                learning=learning,
                min_closures=policy.data.min_closures,
                holdout=holdout,
            )
            (folder / "model_card.md").write_text(render_model_card(facts), encoding="utf-8")
            record = transparency_record(facts)
            (folder / "transparency_record.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
            (folder / "transparency_record.md").write_text(render_transparency_record(record), encoding="utf-8")
            retention = RetentionSchedule.load().source
            write_paperwork(
                PaperworkFacts(facts, ablation, retention), folder / "paperwork", pdf=settings.paperwork_pdf
            )
        registry.log_artifacts(folder, artifact_path="report")

        registry.set_alias(registry.CHALLENGER, version)
        gate_tags = {
            "gate_passed": str(decision.promote).lower(),
            "gate_reasons": " | ".join(decision.reasons),
            "previous_champion": champion or "none",
            "run_id": run.info.run_id,
        }
        registry.tag_version(version, gate_tags)
        registry.set_run_tags({f"gate.{k}": v for k, v in gate_tags.items()})
        if decision.promote:
            registry.set_alias(registry.CHAMPION, version)
    return LoggedRun(run_id=run.info.run_id, version=version)
