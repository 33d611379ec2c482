"""``closure-risk train``: from census returns to a registered, evaluated, audited and gated model version.

ingest -> labels and point-in-time features -> split by time -> LightGBM search with early stopping ->
calibration on the validation year -> bands -> evaluation on the test year (with the oracle where the truth is
known, and the neglect population on its own) -> fairness audit -> global SHAP importance -> MLflow run with every
figure, plot, the model card and the transparency record -> registered version with alias ``challenger`` ->
promotion gate -> alias ``champion`` when it passes.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import tempfile
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import FEATURE_NAMES, FEATURES, feature_spec
from models import BAND_NAMES, Bands, ModelMetadata, Reference, RiskModel, registry
from outcomes.evaluate import Interval, calibration_plot, evaluate, intervals_of
from outcomes.fairness import fairness_audit, fairness_plot
from training.card import CardFacts, render_model_card, render_transparency_record, transparency_record
from training.fit import FitResult, band_thresholds, fit_booster, fit_calibrator
from training.frame import load_training_frame
from training.gate import calibration_breaches_beyond_chance, decide
from training.settings import SearchSpace, TrainingSettings
from training.split import Split, split_by_time

__all__ = ["build_model", "champion_or_none", "promote", "train"]


def _flatten(prefix: str, block: dict[str, Interval]) -> dict[str, float]:
    """Intervals as flat MLflow metric names; undefined (NaN) figures left out."""
    out: dict[str, float] = {}
    for key, interval in block.items():
        out[f"{prefix}_{key}"] = interval.value
        out[f"{prefix}_{key}_low"] = interval.low
        out[f"{prefix}_{key}_high"] = interval.high
    return {k: float(v) for k, v in out.items() if not np.isnan(v)}


def _shap_importance(model: RiskModel, frame: pd.DataFrame, folder: Path, *, sample: int, seed: int) -> pd.DataFrame:
    """Global importance (mean |SHAP| in log-odds) and a beeswarm plot, from the shap package."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    rows = frame.sample(min(sample, len(frame)), random_state=seed)
    x = RiskModel.model_input(rows)
    with warnings.catch_warnings():
        # shap announces a change of output type for LightGBM; either type is handled below.
        warnings.filterwarnings("ignore", message="LightGBM binary classifier with TreeExplainer", category=UserWarning)
        explained = shap.TreeExplainer(model.booster).shap_values(x)
    values = np.asarray(explained[1] if isinstance(explained, list) else explained)
    importance = pd.DataFrame(
        {
            "feature": list(FEATURE_NAMES),
            "label": [feature_spec(n).label for n in FEATURE_NAMES],
            "mean_abs_shap": np.abs(values).mean(axis=0),
        }
    ).sort_values("mean_abs_shap", ascending=False)
    numeric = x.copy()
    for spec in FEATURES:
        if spec.kind == "categorical":
            codes = numeric[spec.name].cat.codes.to_numpy(dtype=float)
            numeric[spec.name] = np.where(codes < 0, np.nan, codes)
    # Wide enough for the readable labels; shap's automatic size squeezes the plot to nothing beside them.
    shap.summary_plot(
        values,
        numeric.to_numpy(dtype=float),
        feature_names=[feature_spec(n).label for n in FEATURE_NAMES],
        max_display=20,
        plot_size=(15, 9),
        show=False,
        rng=np.random.default_rng(seed),  # its own generator: the plot's jitter is repeatable
    )
    plt.tight_layout()
    plt.savefig(folder / "shap_beeswarm.png", dpi=110)
    plt.close("all")
    return importance


def _audit_frame(test: pd.DataFrame, p: np.ndarray[Any, Any], high: np.ndarray[Any, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "y": test["label"].to_numpy(),
            "p": p,
            "high": high,
            "sex": test["sex"].astype("object").to_numpy(),
            "ethnic_group": test["ethnic_group"].astype("object").to_numpy(),
            "disability": test["disability"].to_numpy(),
            "age_years": test["age_years"].to_numpy(),
        }
    )


def build_model(
    split: Split, *, seed: int, search: SearchSpace | None = None
) -> tuple[FitResult, RiskModel, dict[str, float]]:
    """Booster, calibrator, bands and reference from the training and validation years only: never the test year."""
    fit = fit_booster(split.train, split.validation, seed=seed, search=search or SearchSpace())
    y_valid = split.validation["label"].to_numpy().astype(float)
    raw_valid = np.asarray(fit.booster.predict(RiskModel.model_input(split.validation), raw_score=True), dtype=float)
    calibrator, calibration_scores = fit_calibrator(raw_valid, y_valid, seed=seed)
    low_below, high_from = band_thresholds(calibrator.apply(raw_valid))
    model = RiskModel(
        booster=fit.booster,
        calibrator=calibrator,
        bands=Bands(low_below, high_from),
        reference=Reference.from_frame(split.train),
        metadata=ModelMetadata(split=split.describe(), params=fit.params, trees=fit.best_iteration),
    )
    return fit, model, calibration_scores


def train(data: Path, settings: TrainingSettings) -> dict[str, Any]:
    """Train, evaluate, audit, log and register; returns the summary printed by the CLI."""
    registry.configure_tracking(
        settings.tracking_uri, experiment=settings.experiment, artifact_location=settings.artifact_location
    )
    built = load_training_frame(data)
    data_end = dt.date.fromisoformat(str(built.summary["data_end"]))
    split = split_by_time(built.frame, data_end=data_end, seed=settings.seed)
    seed, n_boot = settings.seed, settings.bootstrap

    fit, model, calibration_scores = build_model(split, seed=seed, search=settings.search)
    model.metadata.data_end = data_end.isoformat()
    calibrator = model.calibrator

    test = split.test
    y_test = test["label"].to_numpy()
    p_test = model.predict_proba(test)
    band_test = model.bands.assign(p_test)
    high = band_test == "high"
    truth = test["true_probability"].to_numpy() if "true_probability" in test else None
    if truth is not None and not np.isfinite(truth).all():
        truth = None  # the oracle needs the truth of every test case
    evaluation = evaluate(y_test, p_test, high=high, band=band_test, truth=truth, n_boot=n_boot, seed=seed)
    scope = test["in_scope"].to_numpy()
    neglect = (
        evaluate(
            y_test[scope],
            p_test[scope],
            high=high[scope],
            band=band_test[scope],
            truth=truth[scope] if truth is not None else None,
            n_boot=n_boot,
            seed=seed,
        )
        if scope.sum() >= 50 and 0 < y_test[scope].sum() < scope.sum()
        else None
    )
    bands_seen = evaluation.bands
    model.bands = replace(
        model.bands,
        observed_rate={b: float(bands_seen[b].observed_rate) for b in BAND_NAMES if b in bands_seen},
        cases={b: int(bands_seen[b].n) for b in BAND_NAMES if b in bands_seen},
        observed_on=f"test closures, collection year {split.test_year}",
    )
    audit = fairness_audit(_audit_frame(test, p_test, high), n_boot=max(100, n_boot // 2), seed=seed)
    breaches = calibration_breaches_beyond_chance(
        _audit_frame(test, p_test, high),
        audit,
        max_ece=settings.max_group_calibration_error,
        min_n=settings.min_group_cases,
        seed=seed,
    )
    metrics = intervals_of(evaluation.metrics)
    model.metadata.test_metrics = {k: asdict(v) for k, v in metrics.items()}
    # The manager's report states the model's performance and the fairness figures of the child's own groups.
    model.metadata.test_cases = len(test)
    model.metadata.test_year = split.test_year
    model.metadata.fairness = json.loads(audit.to_json(orient="records"))  # NaN -> null

    champion = registry.champion_version()
    p_champion = None
    if champion is not None:
        p_champion = registry.load_model(champion).predict_proba(test)
    decision = decide(
        y=y_test,
        p_new=p_test,
        p_champion=p_champion,
        calibration_error=evaluation.metrics.ece.value,
        group_breaches=breaches,
        max_calibration_error=settings.max_calibration_error,
        n_boot=n_boot,
        seed=seed,
    )

    with (
        registry.start_run(f"train {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}") as run,
        tempfile.TemporaryDirectory(prefix="ccr-run-") as tmp,
    ):
        folder = Path(tmp)
        registry.log_params(
            {
                "seed": seed,
                "bootstrap": n_boot,
                "data_end": data_end.isoformat(),
                "trees": fit.best_iteration,
                "calibration": calibrator.method,
                **{f"lgb_{k}": v for k, v in fit.params.items()},
                "test_year": split.test_year,
                "validation_year": split.validation_year,
            }
        )
        registry.log_metrics(
            {
                **_flatten("test", metrics),
                **_flatten("test_high", intervals_of(evaluation.high_band)),
                "validation_log_loss": fit.validation_log_loss,
                **{f"calibration_cv_log_loss_{k}": v for k, v in calibration_scores.items()},
            }
        )
        if evaluation.oracle:
            registry.log_metrics(_flatten("oracle", intervals_of(evaluation.oracle)))
        if neglect is not None:
            registry.log_metrics(_flatten("neglect", intervals_of(neglect.metrics)))
        calibration_plot(
            y_test, p_test, folder / "calibration_test.png", title=f"Calibration, test year {split.test_year}"
        )
        fairness_plot(audit, folder / "fairness.png")
        audit.to_csv(folder / "fairness.csv", index=False)
        importance = _shap_importance(model, test, folder, sample=settings.shap_sample, seed=seed)
        importance.to_csv(folder / "shap_importance.csv", index=False)
        (folder / "evaluation.json").write_text(
            json.dumps(
                {
                    "all": evaluation.as_dict(),
                    "neglect": neglect.as_dict() if neglect else None,
                    "split": split.describe(),
                    "search": fit.search,
                },
                indent=2,
                default=str,
            )
        )

        registered = registry.log_and_register(model, test.head(5))
        version = registered.version
        facts = CardFacts(
            name=registry.MODEL_NAME,
            version=version,
            run_id=run.info.run_id,
            trained_on=dt.date.today().isoformat(),
            data_end=data_end.isoformat(),
            split=split.describe(),
            test=evaluation,
            neglect=neglect,
            bands=model.bands,
            calibrator=calibrator.method,
            fairness=[{str(k): v for k, v in row.items()} for row in audit.to_dict(orient="records")],
            gate=decision,
            min_group_cases=settings.min_group_cases,
            synthetic=truth is not None,
        )
        (folder / "model_card.md").write_text(render_model_card(facts), encoding="utf-8")
        record = transparency_record(facts)
        (folder / "transparency_record.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
        (folder / "transparency_record.md").write_text(render_transparency_record(record), encoding="utf-8")
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

    summary: dict[str, Any] = {
        "run_id": run.info.run_id,
        "model": registry.MODEL_NAME,
        "version": version,
        "promoted": decision.promote,
        "reasons": decision.reasons,
        "test_year": split.test_year,
        "test": {k: round(v.value, 4) for k, v in metrics.items()},
        "trees": fit.best_iteration,
        "params": fit.params,
        "calibration": calibrator.method,
    }
    if evaluation.oracle is not None:
        summary["oracle"] = {k: round(v.value, 4) for k, v in intervals_of(evaluation.oracle).items()}
    if neglect is not None:
        summary["neglect"] = {k: round(v.value, 4) for k, v in intervals_of(neglect.metrics).items()}
    return summary


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
