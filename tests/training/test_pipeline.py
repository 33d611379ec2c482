"""Training end to end into a real MLflow store in tmp_path: registry, aliases, gate, override, artifacts."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from models import registry
from models.registry import pyfunc_input, pyfunc_records
from training import load_training_frame
from training.pipeline import promote, train
from training.policy import load_policy
from training.settings import Candidate, SearchSpace, TrainingSettings
from training.split import TooFewClosuresError

REPORT = {"model_card.md", "backtest.json", "transparency_record.json", "transparency_record.md", "evaluation.json",
          "fairness.csv", "gate_policy.toml", "fairness.png", "calibration_test.png", "shap_beeswarm.png",
          "shap_importance.csv"}  # fmt: skip


@pytest.fixture
def settings(tmp_path: Path, tiny_cohort_policy: Path) -> TrainingSettings:
    # The tiny cohort's test year has about a hundred closures: far too few to judge calibration against the
    # production bounds (unit tests cover those); here the gate is exercised on AUC against the champion.
    # Likewise its fairness audit reads the test year alone (tests/conftest.py, tiny_cohort_policy).
    return TrainingSettings(
        gate_policy_file=tiny_cohort_policy,
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        artifact_location=str(tmp_path / "mlruns"),
        experiment="test-training",
        bootstrap=60,
        shap_sample=200,
        max_calibration_error=1.0,
        max_group_calibration_error=1.0,
        min_closures=0,  # the tiny cohort is far below the policy's minimum (its refusal is tested below)
        min_rereferrals=0,
    )


# Leaves bigger than the data: no split is possible, every case gets the same score (AUC 0.5).
WEAK = SearchSpace(candidates=(Candidate(num_leaves=2, max_depth=1, min_data_in_leaf=10**6),), max_rounds=2)


def test_train_registers_gates_promotes_and_records_an_override(
    tiny_authority: Path, settings: TrainingSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may land in the working tree
    first = train(tiny_authority, settings)
    assert first.version == "1"
    assert first.promoted is True, [r for r in first.reasons if "block" in r or "beyond" in r]
    assert "no champion yet" in first.reasons
    assert registry.champion_version() == "1"
    assert set(first.test) == {"roc_auc", "pr_auc", "brier", "log_loss", "ece"}
    assert first.oracle is not None
    assert set(first.summary()) >= {"version", "promoted", "reasons", "test_year", "test", "oracle", "run_id"}

    artifacts = {Path(a.path).name for a in mlflow.MlflowClient().list_artifacts(first.run_id, "report")}
    assert artifacts >= REPORT
    card = Path(mlflow.artifacts.download_artifacts(run_id=first.run_id, artifact_path="report/model_card.md"))
    text = card.read_text(encoding="utf-8")
    assert "version 1" in text
    assert "what the score does not mean" in text.lower()
    assert "| logistic regression | base rate |" in text
    # The rolling-origin backtest is the headline: every tested year, pooled, mean and worst, then this version.
    assert first.backtest is not None
    assert first.backtest["years"] == [2022, 2023, 2024]
    headline = text[text.index("## How well the model does: rolling-origin backtest") :]
    assert headline.index("| 2022 |") < headline.index("| **all years pooled** |") < headline.index("| worst year |")
    assert f"| {first.test_year}, this version |" in headline
    assert "| logistic regression | 0." in headline
    # The learning curve is in the card by default: the recipe on a quarter and half of the training children.
    assert "## Learning curve: the same recipe on less data" in text
    assert "| 25% |" in text
    assert "| 50% |" in text
    # The tiny authority's labelled closures are scarce: the card says how its calibrator's scores were made.
    assert "(10 folds grouped by child, each fold's booster also learning from the children that stopped" in text
    record = Path(
        mlflow.artifacts.download_artifacts(run_id=first.run_id, artifact_path="report/transparency_record.json")
    )
    assert "Rolling-origin backtest, collection years 2022, 2023, 2024" in record.read_text(encoding="utf-8")
    assert any("the logistic baseline beyond the interval" in r for r in first.reasons)
    assert first.baselines is not None
    assert set(first.baselines) == {"logistic regression", "base rate"}

    # The bundle carries the backtest's pooled figures, which the service's report and GET /v1/model headline.
    served = registry.load_model("champion").metadata
    assert served.backtest_years == first.backtest["years"]
    for name in ("roc_auc", "ece"):
        assert served.backtest_metrics[name]["value"] == pytest.approx(first.backtest["pooled"][name], abs=1e-4)
    auc = served.backtest_metrics["roc_auc"]
    assert auc["low"] <= auc["value"] <= auc["high"]
    assert served.backtest_cases == first.backtest["pooled"]["n"]
    neglect = first.backtest["pooled_neglect"]
    assert (
        (served.backtest_neglect_metrics or None) is None
        if neglect is None
        else (served.backtest_neglect_metrics["roc_auc"]["value"] == pytest.approx(neglect["roc_auc"], abs=1e-4))
    )

    # The registered champion loads through MLflow's generic pyfunc API and gives the bundle's probabilities.
    frame = load_training_frame(tiny_authority).frame.head(20)
    # predict is type-hinted: it takes JSON-like rows (what mlflow models serve hands it) or a DataFrame.
    pyfunc = mlflow.pyfunc.load_model(f"models:/{registry.MODEL_NAME}@champion")
    bundle = registry.load_model("champion")
    for rows in (pyfunc_records(frame), pyfunc_input(frame)):
        served = pyfunc.predict(rows)
        probabilities = [p.probability for p in served]
        np.testing.assert_allclose(probabilities, bundle.predict_proba(frame), rtol=0, atol=1e-12)
        assert {p.band for p in served} <= {"low", "medium", "high"}

    # A much weaker model on the same test cases is refused, and stays challenger only.
    second = train(tiny_authority, settings.model_copy(update={"search": WEAK}))
    assert second.version == "2"
    assert second.promoted is False, second.reasons
    assert any("worse than the champion" in r for r in second.reasons)
    assert registry.champion_version() == "1"
    tags = registry.version_tags("2")
    assert tags["gate_passed"] == "false"
    assert str(mlflow.MlflowClient().get_model_version_by_alias(registry.MODEL_NAME, "challenger").version) == "2"

    # A person overrides the gate: recorded on the version.
    override = promote("2", reason="Board decision to trial the simpler model", settings=settings)
    assert override["previous_champion"] == "1"
    assert registry.champion_version() == "2"
    assert registry.version_tags("2")["override_reason"] == "Board decision to trial the simpler model"

    # A better model than that champion is promoted by the gate.
    third = train(tiny_authority, settings)
    assert third.promoted is True
    assert any("not worse than the champion" in r for r in third.reasons)
    assert registry.champion_version() == "3"
    assert not (tmp_path / "mlflow.db").is_dir()
    assert not Path("mlruns").exists() or Path("mlruns").resolve() == (tmp_path / "mlruns").resolve()


def test_train_refuses_too_little_data_naming_what_it_has_and_needs(
    tiny_authority: Path, settings: TrainingSettings
) -> None:
    policy = load_policy().data
    closures = load_training_frame(tiny_authority).frame
    assert len(closures) < policy.min_closures  # the tiny cohort is below the policy's minimum
    with pytest.raises(TooFewClosuresError) as refused:
        train(tiny_authority, settings.model_copy(update={"min_closures": None, "min_rereferrals": None}))
    message = str(refused.value)
    assert f"the returns hold {len(closures):,} labelled closures" in message
    assert f"{int(closures['label'].sum()):,} of them re-referred" in message
    assert f"at least {policy.min_closures:,} closures and {policy.min_rereferrals:,} re-referrals" in message
    # Enough closures but too few re-referrals is refused too.
    with pytest.raises(TooFewClosuresError, match="re-referrals"):
        train(tiny_authority, settings.model_copy(update={"min_rereferrals": len(closures)}))
    assert registry.champion_version() is None  # nothing was registered


def test_promote_needs_a_reason(settings: TrainingSettings) -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        promote("1", reason="  ", settings=settings)


def test_fairness_table_of_a_run_has_every_group(tiny_authority: Path, settings: TrainingSettings,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    report = train(tiny_authority, settings)
    table = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=report.run_id, artifact_path="report/fairness.csv"))
    assert set(table["dimension"]) == {"sex", "ethnic_group", "disability", "age_band"}
    assert {"0-4", "5-9", "10-14", "15-17"} <= set(table[table["dimension"] == "age_band"]["group"])
    assert (table["n"] > 0).all()
